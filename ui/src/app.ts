// The page: a sidebar (who I am, contacts with presence, missed calls, join
// a room), the stage (a conversation's history, or the call screen), and
// overlays for ringing. The Rust side owns the state (`View`); the page
// renders it and keeps only what is its own: the open chat, plots, tiles.
import { Conversation, tick } from "./chat";
import { fill, h, option } from "./dom";
import { errorText, ipc } from "./ipc";
import { gridShape, spotlightOf, type LayoutMode } from "./layout";
import { SHORTCUT_HELP, shortcutOf } from "./shortcuts";
import { StatsHistory } from "./statsHistory";
import { StatsPanel } from "./statsPanel";
import { toast } from "./toast";
import type { CallEvent, CallRecord, Contact, Devices, FrameEndpoint, Settings, UiEvent, View } from "./types";
import { VideoTile } from "./video/tile";
import { SettingsPanel } from "./settingsPanel";

const SPEAKING_DBOV = 45;

export class App {
  private view: View;
  private contacts: Contact[] = [];
  private query = "";
  private selected: string | null = null;
  /** Contacts ticked for a group call. */
  private picked = new Set<string>();
  private groupButton = h("button", { id: "group-call", disabled: true }, "Group call");
  private conversation: Conversation | null = null;
  private history: CallRecord[] = [];
  private stats = new StatsHistory();
  private tiles = new Map<string, VideoTile>();
  private selfTile: VideoTile | null = null;
  private layout: LayoutMode = "grid";
  private pinned: string | null = null;
  private speaking: string | null = null;
  private showSelf = true;
  private showStats = false;
  private settings: Settings | null = null;
  private devices: Devices | null = null;
  private settingsPanel: SettingsPanel;

  // Static skeleton; only the parts below are refilled.
  private root = h("div", { id: "main" });
  private setup = h("div", { id: "setup" });
  private me = h("div", { class: "me" });
  private contactList = h("ul", { id: "contacts" });
  private missed = h("ul", { id: "missed" });
  private stage = h("main", { id: "stage" });
  private home = h("section", { id: "home" });
  private callScreen = h("section", { id: "call" });
  private grid = h("div", { id: "grid" });
  private selfBox = h("div", { id: "self-view" });
  private controls = h("div", { id: "controls" });
  private callStatus = h("div", { id: "call-status" });
  private chatList = h("ol", { id: "chat-messages" });
  private chatInput = h("input", { id: "chat-input", placeholder: "Message", type: "text" });
  private statsPanel: StatsPanel;
  private incoming = h("div", { id: "incoming" });
  private outgoing = h("div", { id: "outgoing" });
  private banner = h("div", { id: "banner" });

  constructor(private host: HTMLElement, view: View, private endpoint: FrameEndpoint) {
    this.view = view;
    this.statsPanel = new StatsPanel(() => this.peerNames());
    this.settingsPanel = new SettingsPanel(() => this.reloadSettings());
    this.settingsPanel.endpoint = endpoint;
    this.settingsPanel.inCall = () => this.view.call !== null;
    this.build();
  }

  async start(): Promise<void> {
    await ipc.onEvent((event) => this.onEvent(event));
    // The view may have changed between the first fetch and listening.
    this.adopt(await ipc.appState());
    await this.reloadSettings();
    await this.refreshContacts();
    await this.refreshHistory();
    this.render();
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  private build(): void {
    const addUser = h("input", { id: "add-user", placeholder: "user id", type: "text" });
    const addName = h("input", { id: "add-name", placeholder: "name (optional)", type: "text" });
    const search = h("input", { id: "search", placeholder: "Search contacts", type: "search" });
    search.addEventListener("input", () => {
      this.query = search.value;
      void this.refreshContacts();
    });
    const roomName = h("input", { id: "room-name", placeholder: "room name", type: "text" });
    const sidebar = h(
      "aside",
      { id: "sidebar" },
      this.me,
      h("form", {
        id: "add-contact",
        class: "row",
        onsubmit: (event) => {
          event.preventDefault();
          void this.act(async () => {
            await ipc.addContact(addUser.value, addName.value);
            addUser.value = "";
            addName.value = "";
            await this.refreshContacts();
          });
        },
      }, addUser, addName, h("button", { type: "submit", id: "add-contact-button" }, "Add")),
      h("div", { class: "row" }, search, this.groupButton),
      this.contactList,
      h("h3", {}, "Recent calls"),
      this.missed,
      h("form", {
        id: "join-room",
        class: "row",
        onsubmit: (event) => {
          event.preventDefault();
          void this.act(() => ipc.joinRoom(roomName.value));
        },
      }, roomName, h("button", { type: "submit" }, "Join room")),
    );
    this.groupButton.addEventListener("click", () => {
      const users = [...this.picked];
      void this.act(async () => {
        await ipc.groupCall(users, "video");
        this.picked.clear();
        this.renderContacts();
      });
    });
    this.chatInput.maxLength = 4000;
    const chatForm = h("form", {
      id: "chat-form",
      class: "row",
      onsubmit: (event) => {
        event.preventDefault();
        const text = this.chatInput.value.trim();
        if (!text) return;
        void this.act(async () => {
          const message = await ipc.sendChat(text);
          this.chatInput.value = "";
          if (this.conversation?.id === message.conversation && this.conversation.add(message)) this.renderChat();
        });
      },
    }, this.chatInput, h("button", { type: "submit", id: "chat-send" }, "Send"));
    const chat = h("aside", { id: "chat" }, h("h3", {}, "Chat"), this.chatList, chatForm);
    this.callScreen.append(
      this.callStatus,
      h("div", { id: "call-body" }, h("div", { id: "videos" }, this.grid, this.selfBox), chat),
      this.controls,
      this.statsPanel.element,
    );
    this.stage.append(this.banner, this.home, this.callScreen);
    this.root.append(sidebar, this.stage, this.incoming, this.outgoing, this.settingsPanel.element);
    this.host.append(this.setup, this.root);
    window.addEventListener("resize", () => this.layoutGrid());
  }

  private async act(work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
    } catch (error) {
      toast(errorText(error), "error");
    }
  }

  private peerNames(): Record<string, string> {
    const names: Record<string, string> = {};
    for (const [session, peer] of Object.entries(this.view.call?.peers ?? {})) names[session] = peer.name;
    return names;
  }

  private onEvent(event: UiEvent): void {
    if (event.type === "view") {
      const wasInCall = this.view.call?.room;
      if (!this.adopt(event.view)) return;
      if (wasInCall && !this.view.call) {
        void this.refreshHistory();
        this.stats.clear();
        this.statsPanel.clear();
      }
      this.render();
      return;
    }
    if (event.type === "problem") {
      toast(event.message, "error");
      return;
    }
    this.onCallEvent(event.event);
  }

  /** Takes `view` unless a newer one is already here; says whether it did. */
  private adopt(view: View): boolean {
    if (view.version < this.view.version) return false;
    this.view = view;
    return true;
  }

  private onCallEvent(event: CallEvent): void {
    const me = this.view.profile?.user ?? "";
    switch (event.event) {
      case "chat_received":
      case "chat_sent":
        if (this.conversation?.id === this.view.call?.conversation && this.conversation?.live(event.message, me)) {
          this.renderChat();
        }
        break;
      case "chat_acked":
        if (this.conversation?.acked(event.id, me)) this.renderChat();
        break;
      case "stats": {
        this.stats.add(Date.now() / 1000, event.peers);
        const loudest = event.peers
          .filter((p) => p.audio_level_dbov !== null && p.audio_level_dbov < SPEAKING_DBOV)
          .sort((a, b) => (a.audio_level_dbov ?? 127) - (b.audio_level_dbov ?? 127))[0];
        this.speaking = loudest?.session ?? null;
        this.markSpeaking();
        if (this.showStats) this.statsPanel.update(this.stats, this.rendererName());
        break;
      }
      case "missed_call":
      case "ring_ended":
        void this.refreshHistory();
        break;
      default:
        break;
    }
  }

  private onKey(event: KeyboardEvent): void {
    if (!this.view.call) return;
    const shortcut = shortcutOf(event);
    if (!shortcut) return;
    event.preventDefault();
    if (shortcut === "toggle-mic") void this.act(() => ipc.setMicMuted(!this.view.mic_muted));
    if (shortcut === "toggle-camera") void this.act(() => ipc.setCamera(!this.view.camera_on));
    if (shortcut === "hang-up") void this.act(() => ipc.hangUp());
  }

  private rendererName(): string {
    const tile = this.tiles.values().next().value ?? this.selfTile;
    return tile?.rendererKind ?? (this.settings?.renderer ?? "auto");
  }

  private async reloadSettings(): Promise<void> {
    if (!this.view.profile) return;
    const [settings, devices] = await Promise.all([ipc.settings(), ipc.devices()]);
    this.settings = settings;
    this.devices = devices;
    this.settingsPanel.setData(settings, devices);
    // A new renderer choice applies to new tiles.
    this.closeTiles();
    this.render();
  }

  private async refreshContacts(): Promise<void> {
    if (!this.view.profile) return;
    this.contacts = await ipc.contacts(this.query);
    this.renderContacts();
  }

  private async refreshHistory(): Promise<void> {
    if (!this.view.profile) return;
    this.history = await ipc.callsHistory();
    this.renderHistory();
  }

  private async openConversation(id: string): Promise<void> {
    if (this.conversation?.id === id) return;
    const conversation = new Conversation(id);
    this.conversation = conversation;
    const history = await ipc.chatHistory(id);
    for (const message of history) conversation.add(message);
    if (this.conversation === conversation) this.renderChat();
  }

  // ---- rendering ----

  private render(): void {
    const profile = this.view.profile;
    this.setup.hidden = profile !== null;
    this.root.hidden = profile === null;
    if (!profile) {
      this.renderSetup();
      return;
    }
    this.renderMe();
    this.renderContacts();
    this.renderBanner();
    this.renderRinging();
    const call = this.view.call;
    this.home.hidden = call !== null;
    this.callScreen.hidden = call === null;
    if (call) {
      void this.openConversation(call.conversation);
      this.renderCall();
    } else {
      this.closeTiles();
      this.renderHome();
    }
  }

  private renderSetup(): void {
    if (this.setup.childElementCount > 0) return;
    const user = h("input", { id: "setup-user", placeholder: "user id, e.g. alice", type: "text" });
    const name = h("input", { id: "setup-name", placeholder: "your name", type: "text" });
    fill(
      this.setup,
      h("h1", {}, "Welcome to Kith"),
      h("p", {}, "Pick the id others will call you by, and the name they will see."),
      h("form", {
        id: "setup-form",
        onsubmit: (event) => {
          event.preventDefault();
          void this.act(async () => {
            this.adopt(await ipc.saveProfile(user.value, name.value));
            await this.reloadSettings();
            await this.refreshContacts();
            this.render();
          });
        },
      }, user, name, h("button", { type: "submit", id: "setup-done" }, "Start")),
    );
  }

  private renderMe(): void {
    const { profile, signaling } = this.view;
    const status = signaling.connected ? "online" : signaling.error ? `offline: ${signaling.error}` : "connecting…";
    fill(
      this.me,
      h("div", { class: "me-name" }, profile?.name ?? "", h("span", { class: "me-id" }, ` @${profile?.user ?? ""}`)),
      h("div", { class: `me-status ${signaling.connected ? "on" : "off"}`, id: "signaling-status" }, status),
      h("button", { id: "open-settings", onclick: () => this.settingsPanel.open() }, "Settings"),
    );
  }

  private renderContacts(): void {
    const inCall = this.view.call !== null || this.view.ringing.length > 0;
    for (const user of this.picked) if (!(user in this.view.online)) this.picked.delete(user);
    this.groupButton.disabled = inCall || this.picked.size < 2;
    fill(this.groupButton, this.picked.size >= 2 ? `Group call (${this.picked.size})` : "Group call");
    fill(
      this.contactList,
      ...this.contacts.map((contact) => {
        const online = contact.user in this.view.online;
        const pick = h("input", { type: "checkbox", class: "pick", title: "Add to a group call", checked: this.picked.has(contact.user), disabled: !online || inCall });
        pick.addEventListener("change", () => {
          if (pick.checked) this.picked.add(contact.user);
          else this.picked.delete(contact.user);
          this.renderContacts();
        });
        return h(
          "li",
          { class: `contact ${online ? "online" : "offline"}`, dataset: { user: contact.user } },
          pick,
          h("span", { class: "presence", title: online ? "online" : "offline" }),
          h("button", { class: "contact-name", title: contact.name, onclick: () => this.select(contact.user) }, contact.name),
          h("span", { class: "contact-id" }, `@${contact.user}`),
          h("button", {
            class: "call-video", title: "Video call", disabled: !online || inCall,
            onclick: () => void this.act(() => ipc.ring(contact.user, "video")),
          }, "Video"),
          h("button", {
            class: "call-audio", title: "Audio call", disabled: !online || inCall,
            onclick: () => void this.act(() => ipc.ring(contact.user, "audio")),
          }, "Audio"),
          h("button", {
            class: "contact-rename", title: "Rename",
            onclick: () => {
              const name = window.prompt(`New name for @${contact.user}`, contact.name);
              if (name !== null) void this.act(async () => { await ipc.renameContact(contact.user, name); await this.refreshContacts(); });
            },
          }, "✎"),
          h("button", {
            class: "contact-remove", title: "Remove",
            onclick: () => void this.act(async () => { await ipc.removeContact(contact.user); await this.refreshContacts(); }),
          }, "✕"),
        );
      }),
    );
  }

  private select(user: string): void {
    this.selected = user;
    if (!this.view.call) {
      void this.openConversation(user);
      this.renderHome();
    }
  }

  private renderHistory(): void {
    fill(
      this.missed,
      ...this.history.slice(0, 20).map((record) =>
        h(
          "li",
          { class: `history ${record.outcome?.startsWith("missed") ? "missed" : ""}` },
          `${record.direction === "incoming" ? "↙" : "↗"} ${record.peers.join(", ") || record.room} · ${record.media} · ${record.outcome ?? "…"}`,
        ),
      ),
    );
  }

  private renderBanner(): void {
    const lines = [...this.view.warnings];
    if (this.view.last_end && !this.view.call) lines.unshift(this.view.last_end);
    fill(this.banner, ...lines.map((line) => h("div", { class: "banner-line" }, line)));
  }

  private renderHome(): void {
    const who = this.selected;
    if (!who) {
      fill(this.home, h("p", { class: "hint" }, "Choose a contact to see your chats, or call someone who is online."));
      return;
    }
    const contact = this.contacts.find((c) => c.user === who);
    fill(
      this.home,
      h("h2", {}, contact?.name ?? who),
      h("p", { class: "hint" }, "Chat happens during calls; here is what you said before."),
      this.chatList,
    );
    this.renderChat();
  }

  private renderChat(): void {
    const me = this.view.profile?.user;
    const names: Record<string, string> = { ...this.peerNames() };
    for (const contact of this.contacts) names[contact.user] = contact.name;
    fill(
      this.chatList,
      ...(this.conversation?.list() ?? []).map((message) =>
        h(
          "li",
          { class: `message ${message.outgoing ? "mine" : "theirs"}`, dataset: { id: message.id, state: message.state } },
          h("span", { class: "message-from" }, message.from === me ? "me" : (Object.values(this.view.call?.peers ?? {}).find((p) => p.user === message.from)?.name ?? names[message.from] ?? message.from)),
          h("span", { class: "message-text" }, message.text),
          h("span", { class: "message-tick" }, tick(message)),
        ),
      ),
    );
    this.chatList.scrollTop = this.chatList.scrollHeight;
    const callChat = document.getElementById("chat");
    if (callChat && this.view.call && this.chatList.parentElement !== callChat) {
      callChat.insertBefore(this.chatList, document.getElementById("chat-form"));
    }
  }

  private renderRinging(): void {
    fill(
      this.incoming,
      ...this.view.invites.map((invite) =>
        h(
          "div",
          { class: "invite", dataset: { room: invite.room } },
          h("div", { class: "invite-who" }, invite.from_name, h("span", { class: "contact-id" }, ` @${invite.from}`)),
          h("div", {}, invite.media === "video" ? "is calling you (video)" : "is calling you (audio)"),
          h("button", { class: "accept", onclick: () => void this.act(() => ipc.answer(invite.room, "accept")) }, "Accept"),
          h("button", { class: "decline", onclick: () => void this.act(() => ipc.answer(invite.room, "decline")) }, "Decline"),
        ),
      ),
    );
    const rings = this.view.ringing;
    const first = rings[0];
    fill(
      this.outgoing,
      first && !this.view.call
        ? h(
            "div",
            { class: "ringing", dataset: { room: first.room } },
            `Calling ${rings.map((r) => r.to).join(", ")}…`,
            h("button", { id: "cancel-ring", onclick: () => void this.act(() => ipc.cancelRing(first.room)) }, "Cancel"),
          )
        : null,
    );
  }

  private renderCall(): void {
    const call = this.view.call;
    if (!call) return;
    const peers = Object.entries(call.peers);
    const reconnecting = peers.filter(([, p]) => p.reconnecting).map(([, p]) => p.name);
    const signalingDown = !this.view.signaling.connected;
    const ringingHere = this.view.ringing.filter((r) => r.room === call.room).map((r) => r.to);
    fill(
      this.callStatus,
      h("span", {}, call.conversation.startsWith("room:") ? `Room ${call.room}` : `Call with ${peers[0]?.[1].name ?? call.conversation}`),
      signalingDown ? h("span", { class: "reconnecting" }, " · reconnecting to the server…") : null,
      reconnecting.length ? h("span", { class: "reconnecting" }, ` · reconnecting ${reconnecting.join(", ")}…`) : null,
      peers.length === 0 ? h("span", {}, " · waiting for others to join") : null,
      ringingHere.length ? h("span", { class: "ringing-here" }, ` · ringing ${ringingHere.join(", ")}…`) : null,
    );
    // Tiles: one per remote peer, kept across renders.
    for (const [session, tile] of this.tiles) {
      if (!(session in call.peers)) {
        tile.close();
        this.tiles.delete(session);
        this.stats.forget(session);
      }
    }
    for (const [session, peer] of peers) {
      let tile = this.tiles.get(session);
      if (!tile) {
        tile = new VideoTile(session, this.endpoint, this.settings?.renderer ?? "auto");
        tile.element.append(h("div", { class: "tile-label" }), h("div", { class: "tile-state" }));
        tile.element.addEventListener("dblclick", () => {
          this.pinned = this.pinned === session ? null : session;
          this.layoutGrid();
        });
        this.tiles.set(session, tile);
        this.grid.append(tile.element);
      }
      const label = tile.element.querySelector(".tile-label");
      if (label) fill(label, peer.name);
      const state = tile.element.querySelector(".tile-state");
      if (state) fill(state, peer.reconnecting ? "reconnecting…" : peer.connected ? "" : "connecting…");
      tile.element.dataset.user = peer.user;
    }
    if (!this.selfTile && call.media === "video") {
      this.selfTile = new VideoTile("self", this.endpoint, this.settings?.renderer ?? "auto");
      this.selfTile.element.classList.add("self");
      this.selfBox.append(this.selfTile.element);
    }
    this.selfBox.hidden = !this.showSelf || !this.view.camera_on;
    this.layoutGrid();
    this.markSpeaking();
    this.renderControls();
  }

  private layoutGrid(): void {
    const sessions = [...this.tiles.keys()];
    const spot = this.layout === "spotlight" ? spotlightOf(sessions, this.pinned, this.speaking) : null;
    this.grid.dataset.layout = this.layout;
    if (spot) {
      for (const [session, tile] of this.tiles) tile.element.classList.toggle("spotlit", session === spot);
      this.grid.style.gridTemplateColumns = "";
      return;
    }
    const rect = this.grid.getBoundingClientRect();
    const shape = gridShape(sessions.length, rect.width || 800, rect.height || 450);
    this.grid.style.gridTemplateColumns = `repeat(${shape.columns}, 1fr)`;
    for (const tile of this.tiles.values()) tile.element.classList.remove("spotlit");
  }

  private markSpeaking(): void {
    for (const [session, tile] of this.tiles) tile.element.classList.toggle("speaking", session === this.speaking);
  }

  private renderControls(): void {
    const { mic_muted: muted, camera_on: cameraOn } = this.view;
    const select = (kind: "camera" | "microphone" | "speaker", list: { id: string; label: string }[], current: string) => {
      const element = h("select", { class: `switch-${kind}`, title: kind });
      for (const device of list) element.append(option(device.id, device.label, device.id === current));
      element.addEventListener("change", () => void this.act(() => ipc.switchDevice(kind, element.value)));
      return element;
    };
    const devices = this.devices;
    const settings = this.settings;
    fill(
      this.controls,
      h("button", { id: "toggle-mic", class: muted ? "off" : "", title: `Mute (${SHORTCUT_HELP["toggle-mic"]})`, onclick: () => void this.act(() => ipc.setMicMuted(!muted)) }, muted ? "Unmute" : "Mute"),
      h("button", { id: "toggle-camera", class: cameraOn ? "" : "off", title: `Camera (${SHORTCUT_HELP["toggle-camera"]})`, onclick: () => void this.act(() => ipc.setCamera(!cameraOn)) }, cameraOn ? "Camera off" : "Camera on"),
      h("button", { id: "hang-up", class: "danger", title: `Hang up (${SHORTCUT_HELP["hang-up"]})`, onclick: () => void this.act(() => ipc.hangUp()) }, "Hang up"),
      h("button", { id: "toggle-layout", onclick: () => { this.layout = this.layout === "grid" ? "spotlight" : "grid"; this.layoutGrid(); } }, this.layout === "grid" ? "Spotlight" : "Grid"),
      h("button", { id: "toggle-self", onclick: () => { this.showSelf = !this.showSelf; this.renderCall(); } }, this.showSelf ? "Hide self view" : "Show self view"),
      h("button", { id: "toggle-stats", onclick: () => { this.showStats = !this.showStats; this.statsPanel.element.hidden = !this.showStats; if (this.showStats) this.statsPanel.update(this.stats, this.rendererName()); this.renderControls(); } }, this.showStats ? "Hide stats" : "Stats"),
      devices && settings ? select("camera", devices.cameras, settings.camera) : null,
      devices && settings ? select("microphone", devices.microphones, settings.microphone) : null,
      devices && settings ? select("speaker", devices.speakers, settings.speaker === null ? "default" : String(settings.speaker)) : null,
    );
    this.statsPanel.element.hidden = !this.showStats;
  }

  private closeTiles(): void {
    for (const tile of this.tiles.values()) tile.close();
    this.tiles.clear();
    this.selfTile?.close();
    this.selfTile = null;
  }
}
