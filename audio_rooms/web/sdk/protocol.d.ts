// The audio-rooms room WebSocket protocol (docs/protocol.md), as TypeScript declarations.
// Generated from the server's JSON Schema (GET /api/schema/ws.json) by
// `python3 -m audio_rooms.typescript`: do not edit by hand; a test fails when this
// file and the server's message models drift apart.

export interface AccountsOnlyChanged {
  version: number;
  type: "accounts_only_changed";
  enabled: boolean;
  by: string;
}

export interface AccountsOnlyMessage {
  ref?: string | null;
  type: "set_accounts_only";
  enabled: boolean;
}

export interface Ack {
  type: "ack";
  ref: string | null;
  version: number;
}

export interface ActiveSpeaker {
  user_id: string;
  level: number;
}

export interface ActiveSpeakers {
  type: "active_speakers";
  speakers: Array<ActiveSpeaker>;
}

/** The room's listener count and sample: at most once a tick per node, when they change. */
export interface Audience {
  type: "audience";
  count: number;
  sample: Array<Participant>;
}

export interface AudienceListPage {
  listeners: Array<Participant>;
  next: string | null;
}

export interface AudiencePage {
  type: "audience_page";
  ref: string | null;
  count: number;
  listeners: Array<Participant>;
  next: string | null;
}

/**
 * A page of the audience in join order, after ``cursor`` (the last page's ``next``); or,
 * with ``followed``, the listeners the asker follows.
 */
export interface AudiencePageMessage {
  ref?: string | null;
  type: "audience_page";
  cursor?: string | null;
  limit?: number;
  followed?: boolean;
}

export interface AudienceView {
  count: number;
  sample: Array<Participant>;
  page: AudienceListPage;
}

export interface ErrorMessage {
  type: "error";
  code: string;
  message: string;
  details?: { [key: string]: unknown } | null;
  ref: string | null;
}

export interface HandLowered {
  version: number;
  user_id: string;
  type: "hand_lowered";
  by: string | null;
}

export interface HandRaised {
  version: number;
  user_id: string;
  type: "hand_raised";
  participant: Participant;
}

export interface IceServer {
  urls: Array<string> | string;
  username?: string;
  credential?: string;
}

export interface IceServers {
  type: "ice_servers";
  ice_servers: Array<IceServer>;
  ice_servers_ttl: number;
  ref: string | null;
}

/** Asks for ICE servers with fresh TURN credentials, before the ones held expire. */
export interface IceServersMessage {
  ref?: string | null;
  type: "ice_servers";
}

export interface InterconnectedChanged {
  version: number;
  type: "interconnected_changed";
  enabled: boolean;
  by: string;
}

export interface InterconnectedMessage {
  ref?: string | null;
  type: "set_interconnected";
  enabled: boolean;
}

export interface InvitationDeclined {
  version: number;
  user_id: string;
  type: "invitation_declined";
}

export interface InviteRotated {
  version: number;
  type: "invite_rotated";
  by: string;
}

export interface Invited {
  version: number;
  user_id: string;
  type: "invited";
  by: string;
  participant: Participant;
}

export interface JoinMessage {
  ref?: string | null;
  type: "join";
  token?: string | null;
  invite?: string | null;
}

export interface LowerHandMessage {
  ref?: string | null;
  type: "lower_hand";
  user_id?: string | null;
}

export interface MediaAnswer {
  type: "media_answer";
  sdp: string;
  ref: string | null;
}

/**
 * The participant's media transport ended: by itself (sfu.transport.Loss), or because it
 * must move to another node (docs/cascade.md). The client offers again in every case.
 */
export interface MediaFailed {
  type: "media_failed";
  reason: "connect_timeout" | "connection_failed" | "connection_closed" | "origin_moved" | "media_moved" | "media_node_lost";
}

export interface MediaOfferMessage {
  ref?: string | null;
  type: "media_offer";
  sdp: string;
}

export interface MuteChanged {
  version: number;
  user_id: string;
  type: "mute_changed";
  self_muted: boolean;
  muted_by_moderator: boolean;
  by: string;
}

export interface Participant {
  user_id: string;
  display_name: string;
  role: "host" | "moderator" | "speaker" | "listener";
  is_guest: boolean;
  self_muted: boolean;
  muted_by_moderator: boolean;
  hand_raised: boolean;
}

export interface ParticipantJoined {
  version: number;
  user_id: string;
  type: "participant_joined";
  participant: Participant;
}

export interface ParticipantLeft {
  version: number;
  user_id: string;
  type: "participant_left";
  reason: "left" | "timeout";
}

export interface ParticipantRemoved {
  version: number;
  user_id: string;
  type: "participant_removed";
  by: string;
  banned: boolean;
}

export interface PingMessage {
  ref?: string | null;
  type: "ping";
}

export interface Pong {
  type: "pong";
  ref: string | null;
}

export interface ReactionMessage {
  ref?: string | null;
  type: "reaction";
  emoji: string;
}

export interface Reactions {
  type: "reactions";
  counts: { [key: string]: number };
}

export interface Reconnect {
  type: "reconnect";
  after_ms: number;
}

export interface RoleChanged {
  version: number;
  user_id: string;
  type: "role_changed";
  role: "host" | "moderator" | "speaker" | "listener";
  by: string | null;
  participant?: Participant;
}

export interface RoomEnded {
  version: number;
  type: "room_ended";
  reason: "ended_by_moderator" | "no_moderator" | "ended_by_admin" | "abandoned";
  by: string | null;
}

export interface RoomLimits {
  max_speakers: number;
  max_listeners: number;
}

export interface RoomSnapshot {
  id: string;
  title: string;
  visibility: "open" | "social" | "closed";
  host_id: string;
  status: "live" | "ended";
  version: number;
  participants: Array<Participant>;
  hand_queue: Array<string>;
  invited: boolean;
  accounts_only: boolean;
  interconnected: boolean;
  limits: RoomLimits;
  audience: AudienceView;
}

export interface SimpleAction {
  ref?: string | null;
  type: "leave" | "raise_hand" | "accept_invitation" | "decline_invitation" | "end_room" | "rotate_invite";
}

/** A fresh room state that replaces the client's (after a role change shows it more). */
export interface Snapshot {
  type: "snapshot";
  room: RoomSnapshot;
  version: number;
}

export interface TargetedMessage {
  ref?: string | null;
  type: "invite_to_speak" | "move_to_audience" | "make_moderator" | "unmake_moderator" | "mute" | "unmute" | "remove" | "ban";
  user_id: string;
}

export interface Welcome {
  type: "welcome";
  you: You;
  room: RoomSnapshot;
  version: number;
  resumed: boolean;
  ice_servers: Array<IceServer>;
  ice_servers_ttl: number;
  slots: number;
}

export interface You {
  user_id: string;
  display_name: string;
  role: "host" | "moderator" | "speaker" | "listener";
  is_guest: boolean;
}

/** Every message of client to server, by its `type`. */
export type ClientMessage =
  | AccountsOnlyMessage
  | AudiencePageMessage
  | IceServersMessage
  | InterconnectedMessage
  | JoinMessage
  | LowerHandMessage
  | MediaOfferMessage
  | PingMessage
  | ReactionMessage
  | SimpleAction
  | TargetedMessage;

/** `type` -> the ClientMessage of that type. */
export interface ClientMessageMap {
  accept_invitation: SimpleAction & { type: "accept_invitation" };
  audience_page: AudiencePageMessage;
  ban: TargetedMessage & { type: "ban" };
  decline_invitation: SimpleAction & { type: "decline_invitation" };
  end_room: SimpleAction & { type: "end_room" };
  ice_servers: IceServersMessage;
  invite_to_speak: TargetedMessage & { type: "invite_to_speak" };
  join: JoinMessage;
  leave: SimpleAction & { type: "leave" };
  lower_hand: LowerHandMessage;
  make_moderator: TargetedMessage & { type: "make_moderator" };
  media_offer: MediaOfferMessage;
  move_to_audience: TargetedMessage & { type: "move_to_audience" };
  mute: TargetedMessage & { type: "mute" };
  ping: PingMessage;
  raise_hand: SimpleAction & { type: "raise_hand" };
  reaction: ReactionMessage;
  remove: TargetedMessage & { type: "remove" };
  rotate_invite: SimpleAction & { type: "rotate_invite" };
  set_accounts_only: AccountsOnlyMessage;
  set_interconnected: InterconnectedMessage;
  unmake_moderator: TargetedMessage & { type: "unmake_moderator" };
  unmute: TargetedMessage & { type: "unmute" };
}

export type ClientMessageType = keyof ClientMessageMap;

/** Every message of server to client, by its `type`. */
export type ServerMessage =
  | AccountsOnlyChanged
  | Ack
  | ActiveSpeakers
  | Audience
  | AudiencePage
  | ErrorMessage
  | HandLowered
  | HandRaised
  | IceServers
  | InterconnectedChanged
  | InvitationDeclined
  | InviteRotated
  | Invited
  | MediaAnswer
  | MediaFailed
  | MuteChanged
  | ParticipantJoined
  | ParticipantLeft
  | ParticipantRemoved
  | Pong
  | Reactions
  | Reconnect
  | RoleChanged
  | RoomEnded
  | Snapshot
  | Welcome;

/** `type` -> the ServerMessage of that type. */
export interface ServerMessageMap {
  accounts_only_changed: AccountsOnlyChanged;
  ack: Ack;
  active_speakers: ActiveSpeakers;
  audience: Audience;
  audience_page: AudiencePage;
  error: ErrorMessage;
  hand_lowered: HandLowered;
  hand_raised: HandRaised;
  ice_servers: IceServers;
  interconnected_changed: InterconnectedChanged;
  invitation_declined: InvitationDeclined;
  invite_rotated: InviteRotated;
  invited: Invited;
  media_answer: MediaAnswer;
  media_failed: MediaFailed;
  mute_changed: MuteChanged;
  participant_joined: ParticipantJoined;
  participant_left: ParticipantLeft;
  participant_removed: ParticipantRemoved;
  pong: Pong;
  reactions: Reactions;
  reconnect: Reconnect;
  role_changed: RoleChanged;
  room_ended: RoomEnded;
  snapshot: Snapshot;
  welcome: Welcome;
}

export type ServerMessageType = keyof ServerMessageMap;

/** Every error `code` the server may send (docs/protocol.md, Errors). */
export type ErrorCode =
  | "account_banned"
  | "account_required"
  | "already_in_room"
  | "bad_request"
  | "bad_signature"
  | "banned"
  | "busy"
  | "cross_origin"
  | "draining"
  | "federation_consent_missing"
  | "federation_disabled"
  | "guests_only_listen"
  | "handle_taken"
  | "internal_error"
  | "invalid_credentials"
  | "invalid_field"
  | "invalid_target"
  | "malformed_message"
  | "malformed_sdp"
  | "media_error"
  | "media_hooks_incompatible"
  | "media_node_unreachable"
  | "message_too_large"
  | "muted_by_moderator"
  | "no_invitation"
  | "no_opus"
  | "not_allowed_in"
  | "not_authenticated"
  | "not_found"
  | "not_home_server"
  | "not_in_room"
  | "not_permitted"
  | "offer_superseded"
  | "origin_moved"
  | "peer_unreachable"
  | "rate_limited"
  | "removed"
  | "replayed_request"
  | "room_ended"
  | "room_full"
  | "room_not_found"
  | "room_not_interconnected"
  | "room_not_live"
  | "router_closed"
  | "server_not_allowed"
  | "service_unavailable"
  | "stage_full"
  | "stale_request"
  | "too_many_connections"
  | "too_many_media_transports"
  | "too_many_rooms"
  | "too_many_tracks"
  | "unknown_message_type"
  | "unsigned_request"
  | "unsupported_media"
  | "unsupported_media_type"
  | "user_not_found"
  | "version_conflict"
  | "weak_password"
  | "wrong_destination";
