// Every command the page uses, typed; nothing else reaches Rust.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  AppError, CallRecord, Contact, Devices, FrameEndpoint, InviteAnswer, MediaKind,
  Settings, StoredMessage, UiEvent, View,
} from "./types";

export const ipc = {
  appState: () => invoke<View>("app_state"),
  saveProfile: (user: string, name: string) => invoke<View>("profile_save", { user, name }),
  contacts: (query = "") => invoke<Contact[]>("contacts_list", { query }),
  addContact: (user: string, name: string) => invoke<Contact>("contact_add", { user, name }),
  renameContact: (user: string, name: string) => invoke<void>("contact_rename", { user, name }),
  removeContact: (user: string) => invoke<void>("contact_remove", { user }),
  ring: (user: string, media: MediaKind) => invoke<string>("call_ring", { user, media }),
  groupCall: (users: string[], media: MediaKind) => invoke<string>("call_group", { users, media }),
  cancelRing: (room: string) => invoke<void>("call_cancel", { room }),
  answer: (room: string, answer: InviteAnswer) => invoke<void>("call_answer", { room, answer }),
  joinRoom: (room: string) => invoke<void>("call_join_room", { room }),
  hangUp: () => invoke<void>("call_hang_up"),
  setMicMuted: (muted: boolean) => invoke<void>("call_set_mic_muted", { muted }),
  setCamera: (on: boolean) => invoke<void>("call_set_camera", { on }),
  callsHistory: () => invoke<CallRecord[]>("calls_history"),
  sendChat: (text: string) => invoke<StoredMessage>("chat_send", { text }),
  chatHistory: (conversation: string) => invoke<StoredMessage[]>("chat_history", { conversation }),
  devices: () => invoke<Devices>("devices_list"),
  switchDevice: (kind: "camera" | "microphone" | "speaker", id: string) =>
    invoke<void>("devices_switch", { switch: { kind, id } }),
  micLevel: () => invoke<number | null>("devices_mic_level"),
  settings: () => invoke<Settings>("settings_get"),
  saveSettings: (settings: Settings) => invoke<void>("settings_save", { settings }),
  framesEndpoint: () => invoke<FrameEndpoint>("frames_endpoint"),
  onEvent: (handler: (event: UiEvent) => void): Promise<UnlistenFn> =>
    listen<UiEvent>("kith", (message) => handler(message.payload)),
};

/** A readable message from whatever a command rejected with. */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error && typeof error === "object" && "message" in error) {
    return String((error as AppError).message);
  }
  return String(error);
}
