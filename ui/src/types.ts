// The shapes the Rust side sends (src-tauri view.rs, kith-call-core events,
// kith-store rows), as serde serializes them.

export type MediaKind = "audio" | "video";
export type InviteAnswer = "accept" | "decline" | "busy";
export type Renderer = "auto" | "webgl" | "canvas";

export interface Profile {
  user: string;
  name: string;
}

export interface Signaling {
  connected: boolean;
  server_url: string | null;
  session: string | null;
  error: string | null;
}

export interface Peer {
  user: string;
  name: string;
  connected: boolean;
  reconnecting: boolean;
  video_codec: string | null;
  audio_codec: string | null;
  candidate_type: string | null;
}

export interface CurrentCall {
  room: string;
  conversation: string;
  media: MediaKind;
  peers: Record<string, Peer>;
}

export interface OutgoingRing {
  room: string;
  to: string;
  media: MediaKind;
}

export interface IncomingRing {
  room: string;
  from: string;
  from_name: string;
  media: MediaKind;
}

export interface View {
  version: number;
  profile: Profile | null;
  signaling: Signaling;
  online: Record<string, string>;
  call: CurrentCall | null;
  ringing: OutgoingRing | null;
  invites: IncomingRing[];
  mic_muted: boolean;
  camera_on: boolean;
  warnings: string[];
  last_end: string | null;
}

export interface Contact {
  user: string;
  name: string;
  added_ms: number;
}

export type MessageState = "sent" | "acked" | "received";

export interface StoredMessage {
  id: string;
  conversation: string;
  from: string;
  text: string;
  sent_ms: number;
  outgoing: boolean;
  state: MessageState;
}

export interface CallRecord {
  id: number;
  room: string;
  peers: string[];
  direction: "outgoing" | "incoming";
  media: string;
  started_ms: number;
  ended_ms: number | null;
  outcome: string | null;
}

export interface ChatMessage {
  id: string;
  from: string;
  ts: number;
  text: string;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface PeerStats {
  session: string;
  user: string;
  connected: boolean;
  ice_restarts: number;
  ice_state: string;
  video_codec: string | null;
  audio_codec: string | null;
  candidate_type: string | null;
  rtt_ms: number | null;
  bitrate_in_kbps: number;
  bitrate_out_kbps: number;
  packets_lost: number;
  jitter_ms: number | null;
  fps_sent: number;
  fps_received: number;
  width: number | null;
  height: number | null;
  freezes: number;
  estimated_bandwidth_kbps: number | null;
  glass_to_glass_ms: Percentiles | null;
  audio_level_dbov: number | null;
}

export interface CallErrorBody {
  kind: string;
  detail?: unknown;
}

export type CallEvent =
  | { event: "chat_received"; message: ChatMessage }
  | { event: "chat_sent"; message: ChatMessage }
  | { event: "chat_acked"; id: string }
  | { event: "stats"; peers: PeerStats[] }
  | { event: "error"; error: CallErrorBody }
  | { event: string; [key: string]: unknown };

export type UiEvent = { type: "view"; view: View } | { type: "call"; event: CallEvent };

export interface Settings {
  server_url: string | null;
  token: string | null;
  listen_on_lan: boolean;
  listen_port: number;
  camera: string;
  microphone: string;
  speaker: number | null;
  codec: string | null;
  low_bandwidth: boolean;
  echo_cancellation: boolean;
  noise_suppression: boolean;
  auto_gain: boolean;
  renderer: Renderer;
}

export interface Device {
  id: string;
  label: string;
}

export interface Devices {
  cameras: Device[];
  microphones: Device[];
  speakers: Device[];
  problems: string[];
}

export interface FrameEndpoint {
  port: number;
  token: string;
}

/** What a failed command rejects with (src-tauri error.rs). */
export interface AppError {
  kind: string;
  message: string;
}
