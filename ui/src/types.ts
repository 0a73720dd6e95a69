// The shapes the Rust side sends, generated from its types by ts-rs into
// ./bindings (src-tauri's `typescript_bindings_are_current` test keeps them
// current). Only AppError is written here: it is serialized by hand.

export type { CallEvent } from "./bindings/CallEvent";
export type { CallRecord } from "./bindings/CallRecord";
export type { ChatMessage } from "./bindings/ChatMessage";
export type { Contact } from "./bindings/Contact";
export type { CurrentCall } from "./bindings/CurrentCall";
export type { Device } from "./bindings/Device";
export type { Devices } from "./bindings/Devices";
export type { FrameEndpoint } from "./bindings/FrameEndpoint";
export type { IncomingRing } from "./bindings/IncomingRing";
export type { InviteAnswer } from "./bindings/InviteAnswer";
export type { MediaKind } from "./bindings/MediaKind";
export type { MessageState } from "./bindings/MessageState";
export type { OutgoingRing } from "./bindings/OutgoingRing";
export type { Peer } from "./bindings/Peer";
export type { PeerStats } from "./bindings/PeerStats";
export type { Percentiles } from "./bindings/Percentiles";
export type { Profile } from "./bindings/Profile";
export type { Renderer } from "./bindings/Renderer";
export type { Settings } from "./bindings/Settings";
export type { Signaling } from "./bindings/Signaling";
export type { StoredMessage } from "./bindings/StoredMessage";
export type { UiEvent } from "./bindings/UiEvent";
export type { View } from "./bindings/View";

/** What a failed command rejects with (src-tauri error.rs). */
export interface AppError {
  kind: string;
  message: string;
}
