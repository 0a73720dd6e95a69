// Protocol v1 over WebSocket (../shared/protocol.md): hello first, one JSON
// object per text frame, requests may carry an id echoed back as `re`.

export class Signaling extends EventTarget {
  /** @param {string} url @param {{user: string, name: string, token?: string}} hello */
  constructor(url, hello) {
    super();
    this.url = url;
    this.hello = hello;
    this.socket = null;
    this.nextId = 1;
    this.welcome = null;
  }

  /** Opens the socket and resolves with the `welcome`, or rejects with why not. */
  connect() {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let welcomed = false;
      socket.onopen = () => {
        const hello = { type: "hello", user: this.hello.user, name: this.hello.name };
        if (this.hello.token) hello.token = this.hello.token;
        socket.send(JSON.stringify(hello));
      };
      socket.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          console.warn("signaling: not JSON", event.data);
          return;
        }
        if (!welcomed) {
          if (message.type === "welcome") {
            welcomed = true;
            this.welcome = message;
            resolve(message);
          } else if (message.type === "error") {
            reject(new Error(`${message.code}: ${message.message ?? ""}`));
          }
          return;
        }
        this.dispatchEvent(new CustomEvent("message", { detail: message }));
      };
      socket.onerror = () => {
        if (!welcomed) reject(new Error(`cannot reach the signaling server at ${this.url}`));
      };
      socket.onclose = (event) => {
        if (!welcomed) reject(new Error(`the server closed the connection (${event.code} ${event.reason})`));
        this.dispatchEvent(new CustomEvent("close", { detail: event }));
      };
    });
  }

  /** Sends a message; returns the request id it carries. */
  send(message) {
    const id = String(this.nextId++);
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ ...message, id }));
    }
    return id;
  }

  close() {
    this.socket?.close(1000);
  }
}
