// Compiled by tests/web/test_sdk.py with `tsc -p`: what a TypeScript program writes against the
// SDK's declarations. The @ts-expect-error lines must stay errors: they fail (as unused
// directives) if the types grow loose enough to accept a wrong program.
import { ApiError, connect, Room, RoomError, roomState } from "../../../audio_rooms/web/sdk/index.js";
import type {
  ClientMessage, ErrorCode, Participant, ServerMessage, ServerMessageMap, Welcome,
} from "../../../audio_rooms/web/sdk/index.js";

export async function listen(roomId: string): Promise<Room> {
  const client = await connect({ token: null });
  if (!client.user) await client.guest("Nima");
  const room = await client.join(roomId, { audio: document.body });

  room.on("welcome", (msg: Welcome) => {
    const slots: number = msg.slots;
    const onStage: Participant[] = msg.room.participants.filter((p) => p.role !== "listener");
    void slots, void onStage;
  });
  room.on("role_changed", (msg) => {
    const role: "host" | "moderator" | "speaker" | "listener" = msg.role;
    const by: string | null = msg.by;
    void role, void by;
  });
  room.on("active_speakers", (msg) => msg.speakers.map((s) => s.level.toFixed(2)));
  room.on("room_ended", (msg) => msg.reason === "ended_by_moderator");
  room.on("message", (msg: ServerMessage) => {
    if (msg.type === "mute_changed") void msg.muted_by_moderator;
  });
  room.on("state", (state) => roomState.stage(state).map((p) => p.display_name));
  room.on("media", (how) => how === "relay");
  room.on("closed", ({ reason }) => reason.length);
  room.on("error", (msg) => {
    const ref: string | null = msg.ref;
    return [msg.code, msg.message, ref];
  });
  room.on("failure", ({ code }) => code === "media_error");

  // @ts-expect-error: active_speakers carries no version
  room.on("active_speakers", (msg) => msg.version);
  // @ts-expect-error: not an event of a room
  room.on("no_such_event", () => {});
  // @ts-expect-error: a role is one of four names
  const wrong: ServerMessageMap["role_changed"] = { type: "role_changed", version: 1, user_id: "u", role: "admin", by: null };
  void wrong;

  const join: ClientMessage = { type: "join", token: "t" };
  // @ts-expect-error: user_id is required of a targeted action
  const mute: ClientMessage = { type: "mute" };
  void join, void mute;

  try {
    const ack = await room.raiseHand();
    const version: number = ack.version;
    void version;
    await room.setMicrophone(true);
    await room.mute("someone");
    await room.ban("someone");
  } catch (err) {
    if (err instanceof RoomError) {
      const code: ErrorCode | string = err.code;
      void code;
    }
    if (err instanceof ApiError) void err.status;
  }
  const code: ErrorCode = "guests_only_listen";
  // @ts-expect-error: not a code the server sends
  const bad: ErrorCode = "no_such_code";
  void code, void bad;
  room.leave();
  return room;
}
