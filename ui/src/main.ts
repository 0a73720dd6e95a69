import "./style.css";
import { App } from "./app";
import { errorText, ipc } from "./ipc";

/** How far start-up got, for a test (or a person with the inspector) to read. */
function stage(name: string): void {
  document.documentElement.dataset.boot = name;
}

async function boot(): Promise<void> {
  const host = document.getElementById("app");
  if (!host) return;
  try {
    stage("fetching");
    const [view, endpoint] = await Promise.all([ipc.appState(), ipc.framesEndpoint()]);
    stage("building");
    const app = new App(host, view, endpoint);
    stage("starting");
    await app.start();
    stage("ready");
  } catch (error) {
    stage("failed");
    host.textContent = `Kith could not start: ${errorText(error)}`;
  }
}

window.addEventListener("error", (event) => {
  document.documentElement.dataset.error = String(event.message);
});

void boot();
