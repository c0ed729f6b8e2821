"""The room rules, table-driven: every role x every action, then the rules users notice."""

from __future__ import annotations

from dataclasses import replace

import pytest

from audio_rooms import errors
from audio_rooms.domain import actions as a
from audio_rooms.domain import apply, new_room
from audio_rooms.domain.reactions import Tally
from audio_rooms.domain.roles import Role, Visibility
from audio_rooms.domain.room import Limits, RoomState
from audio_rooms.domain.transitions import host_rotate_invite

HOST, MOD, MOD2, SPK, SPK2, SPK3, LIS, LIS2, OUT = (
    "host@x", "mod@x", "mod2@x", "spk@x", "spk2@x", "spk3@x", "lis@x", "lis2@x", "out@x",
)
ACTOR_BY_ROLE = {Role.HOST: HOST, Role.MODERATOR: MOD, Role.SPEAKER: SPK, Role.LISTENER: LIS}


def join(state: RoomState, user: str, now: float = 1.0, **kw: object) -> RoomState:
    return apply(state, user, a.Join(display_name=user, is_guest=False, **kw), now).state  # type: ignore[arg-type]


def act(state: RoomState, user: str, action: a.Action, now: float = 10.0) -> RoomState:
    return apply(state, user, action, now).state


@pytest.fixture
def room() -> RoomState:
    """A room with every role present: two moderators, three speakers (one moderator-muted),
    a listener with a raised hand and an invitation, and a listener with a raised hand."""
    state = new_room("r1", "Poetry night", Visibility.OPEN, HOST, now=0.0)
    for i, user in enumerate([HOST, MOD, MOD2, SPK, SPK2, SPK3, LIS, LIS2]):
        state = join(state, user, now=float(i))
    for user in (MOD, MOD2, SPK, SPK2, SPK3):
        state = act(state, user, a.RaiseHand())
        state = act(state, HOST, a.InviteToSpeak(user))
        state = act(state, user, a.AcceptInvitation())
    state = act(state, HOST, a.MakeModerator(MOD))
    state = act(state, HOST, a.MakeModerator(MOD2))
    state = act(state, HOST, a.Mute(SPK2))
    state = act(state, LIS, a.RaiseHand())
    state = act(state, HOST, a.InviteToSpeak(LIS))
    state = act(state, LIS2, a.RaiseHand())
    return state


OK = "ok"
# action -> expected outcome for (host, moderator, speaker, listener)
MATRIX: list[tuple[str, a.Action, tuple[str, str, str, str]]] = [
    ("raise_hand", a.RaiseHand(), ("not_permitted", "not_permitted", "not_permitted", OK)),
    ("lower_hand other", a.LowerHand(LIS2), (OK, OK, "not_permitted", "not_permitted")),
    ("invite_to_speak", a.InviteToSpeak(LIS2), (OK, OK, "not_permitted", "not_permitted")),
    ("accept_invitation", a.AcceptInvitation(),
     ("no_invitation", "no_invitation", "no_invitation", OK)),
    ("decline_invitation", a.DeclineInvitation(),
     ("no_invitation", "no_invitation", "no_invitation", OK)),
    ("move_to_audience", a.MoveToAudience(SPK3), (OK, OK, "not_permitted", "not_permitted")),
    ("make_moderator", a.MakeModerator(SPK3), (OK, OK, "not_permitted", "not_permitted")),
    ("unmake_moderator", a.UnmakeModerator(MOD2),
     (OK, "not_permitted", "not_permitted", "not_permitted")),
    ("mute", a.Mute(SPK3), (OK, OK, "not_permitted", "not_permitted")),
    ("unmute", a.Unmute(SPK2), (OK, OK, "not_permitted", "not_permitted")),
    ("remove", a.Remove(LIS2), (OK, OK, "not_permitted", "not_permitted")),
    ("ban", a.Ban(LIS2), (OK, OK, "not_permitted", "not_permitted")),
    ("end_room", a.EndRoom(), (OK, OK, "not_permitted", "not_permitted")),
    ("set_accounts_only", a.SetAccountsOnly(True), (OK, OK, "not_permitted", "not_permitted")),
    ("rotate_invite", a.RotateInvite(), (OK, OK, "not_permitted", "not_permitted")),
    ("leave", a.Leave(), (OK, OK, OK, OK)),
]
SELF_MATRIX: list[tuple[str, type[a.TargetedAction], tuple[str, str, str, str]]] = [
    ("mute self", a.Mute, (OK, OK, OK, "not_permitted")),
    ("unmute self", a.Unmute, (OK, OK, OK, "not_permitted")),
    ("move self to audience", a.MoveToAudience, ("not_permitted", OK, OK, "invalid_target")),
    ("remove self", a.Remove, ("invalid_target", "invalid_target", "not_permitted",
                               "not_permitted")),
]

CASES = [
    pytest.param(action, role, expected[i], id=f"{name}-{role.value}")
    for name, action, expected in MATRIX
    for i, role in enumerate(ACTOR_BY_ROLE)
] + [
    pytest.param(cls(ACTOR_BY_ROLE[role]), role, expected[i], id=f"{name}-{role.value}")
    for name, cls, expected in SELF_MATRIX
    for i, role in enumerate(ACTOR_BY_ROLE)
]


@pytest.mark.parametrize(("action", "role", "expected"), CASES)
def test_role_action_matrix(
    room: RoomState, action: a.Action, role: Role, expected: str
) -> None:
    actor = ACTOR_BY_ROLE[role]
    assert room.participants[actor].role is role  # type: ignore[index]
    if expected == OK:
        outcome = apply(room, actor, action, 100.0)
        assert outcome.state.version >= room.version
    else:
        with pytest.raises(errors.AudioRoomsError) as info:
            apply(room, actor, action, 100.0)
        assert info.value.code == expected
        assert 400 <= info.value.http_status < 500


@pytest.mark.parametrize(("name", "action", "_"), MATRIX, ids=[m[0] for m in MATRIX])
def test_every_action_needs_presence(
    room: RoomState, name: str, action: a.Action, _: object
) -> None:
    with pytest.raises(errors.NotInRoom):
        apply(room, OUT, action, 100.0)


def test_nobody_moderates_upwards(room: RoomState) -> None:
    for action in (a.Mute(HOST), a.Remove(HOST), a.Ban(MOD2), a.MoveToAudience(MOD2)):
        with pytest.raises(errors.NotPermitted):
            apply(room, MOD, action, 100.0)


def test_invite_flow_changes_role_in_order(room: RoomState) -> None:
    state = act(room, MOD, a.InviteToSpeak(LIS2))
    outcome = apply(state, LIS2, a.AcceptInvitation(), 20.0)
    assert [e.type for e in outcome.events] == ["role_changed", "hand_lowered"]
    speaker = outcome.state.participants[LIS2]  # type: ignore[index]
    assert speaker.role is Role.SPEAKER and speaker.self_muted
    assert LIS2 not in outcome.state.hand_queue
    assert outcome.state.version == state.version + 1


def test_moderator_mute_cannot_be_lifted_by_the_speaker(room: RoomState) -> None:
    with pytest.raises(errors.MutedByModerator):
        apply(room, SPK2, a.Unmute(SPK2), 100.0)
    state = act(room, MOD, a.Unmute(SPK2))
    state = act(state, SPK2, a.Unmute(SPK2))
    assert state.participants[SPK2].may_speak  # type: ignore[index]


def test_demotion_stops_speaking(room: RoomState) -> None:
    state = act(room, SPK, a.Unmute(SPK))
    assert state.participants[SPK].may_speak  # type: ignore[index]
    state = act(state, MOD, a.MoveToAudience(SPK))
    assert not state.participants[SPK].may_speak  # type: ignore[index]


def test_removed_and_banned_users_cannot_rejoin(room: RoomState) -> None:
    state = act(room, MOD, a.Remove(LIS2))
    assert LIS2 not in state.participants
    with pytest.raises(errors.RemovedFromRoom):
        join(state, LIS2)
    with pytest.raises(errors.Banned):
        join(room, OUT, banned=True)


def test_last_moderator_leaving_hands_over_to_longest_serving_speaker() -> None:
    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    for i, user in enumerate([HOST, SPK, SPK2, LIS]):
        state = join(state, user, now=float(i))
    for t, user in ((5.0, SPK2), (6.0, SPK)):  # SPK2 reaches the stage first
        state = act(state, user, a.RaiseHand(), t)
        state = act(state, HOST, a.InviteToSpeak(user), t)
        state = act(state, user, a.AcceptInvitation(), t)
    outcome = apply(state, HOST, a.Leave(), 50.0)
    assert outcome.state.participants[SPK2].role is Role.MODERATOR  # type: ignore[index]
    assert outcome.state.participants[SPK].role is Role.SPEAKER  # type: ignore[index]
    assert [e.type for e in outcome.events] == ["participant_left", "role_changed"]


def test_last_moderator_leaving_with_no_speaker_ends_the_room() -> None:
    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    state = join(join(state, HOST), LIS)
    outcome = apply(state, HOST, a.Leave(), 5.0)
    assert not outcome.state.live
    assert outcome.events[-1].type == "room_ended"
    with pytest.raises(errors.RoomEnded):
        apply(outcome.state, LIS, a.RaiseHand(), 6.0)


def test_host_returns_as_host_after_handover() -> None:
    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    state = join(join(state, HOST), SPK)
    state = act(state, SPK, a.RaiseHand())
    state = act(state, HOST, a.InviteToSpeak(SPK))
    state = act(state, SPK, a.AcceptInvitation())
    state = act(state, HOST, a.Leave())
    state = join(state, HOST, now=99.0)
    assert state.participants[HOST].role is Role.HOST  # type: ignore[index]


def test_visibility_and_guests() -> None:
    social = new_room("r", "t", Visibility.SOCIAL, HOST, now=0.0)
    closed = new_room("r", "t", Visibility.CLOSED, HOST, now=0.0)
    with pytest.raises(errors.NotAllowedIn):
        join(social, LIS)
    assert LIS in join(social, LIS, followed_by_moderator=True).participants
    with pytest.raises(errors.NotAllowedIn):
        join(closed, LIS, followed_by_moderator=True)
    assert LIS in join(closed, LIS, has_invite=True).participants
    guest = a.Join(display_name="Guest", is_guest=True, has_invite=True)
    with pytest.raises(errors.AccountRequired):
        apply(closed, "guest-1@x", guest, 1.0)
    open_room = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    assert "guest-1@x" in apply(open_room, "guest-1@x", guest, 1.0).state.participants


def test_capacity_limits() -> None:
    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0, limits=Limits(2, 1))
    state = join(join(state, HOST), LIS)
    with pytest.raises(errors.RoomFull):
        join(state, LIS2)
    state = act(state, LIS, a.RaiseHand())
    state = act(state, HOST, a.InviteToSpeak(LIS))
    state = act(state, LIS, a.AcceptInvitation())
    state = join(state, LIS2)
    with pytest.raises(errors.StageFull):
        act(state, HOST, a.InviteToSpeak(LIS2))


def test_rejoin_keeps_role_and_changes_nothing(room: RoomState) -> None:
    outcome = apply(room, SPK, a.Join(display_name="x", is_guest=False), 200.0)
    assert outcome.state is room and outcome.events == ()


def test_reactions_are_tallied_per_room() -> None:
    tally = Tally()
    for emoji in ("🔥", "🔥", "👏"):
        tally.add("r1", emoji)
    tally.add("r2", "🎉")
    with pytest.raises(errors.InvalidField):
        tally.add("r1", "<script>")
    assert tally.drain() == {"r1": {"🔥": 2, "👏": 1}, "r2": {"🎉": 1}}
    assert tally.drain() == {}


def test_guests_only_listen() -> None:
    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    state = join(state, HOST)
    guest = "guest-1@x"
    state = apply(state, guest, a.Join(display_name="Guest", is_guest=True), 1.0).state
    for actor, action in [
        (guest, a.RaiseHand()),
        (HOST, a.InviteToSpeak(guest)),
        (HOST, a.MakeModerator(guest)),
    ]:
        with pytest.raises(errors.GuestsOnlyListen):
            act(state, actor, action)


def test_accounts_only_keeps_guests_out_and_rotation_bumps_the_epoch(room: RoomState) -> None:
    guest = a.Join(display_name="Guest", is_guest=True)
    closed = act(room, MOD, a.SetAccountsOnly(True))
    assert closed.accounts_only and closed.snapshot(LIS)["accounts_only"] is True
    with pytest.raises(errors.AccountRequired):
        apply(closed, "guest-1@x", guest, 20.0)
    assert OUT in join(closed, OUT).participants
    reopened = act(closed, HOST, a.SetAccountsOnly(False))
    assert "guest-1@x" in apply(reopened, "guest-1@x", guest, 20.0).state.participants
    rotated = apply(room, MOD, a.RotateInvite(), 20.0)
    assert rotated.state.invite_epoch == room.invite_epoch + 1
    assert rotated.events[0].audience.value == "moderators"
    assert host_rotate_invite(room, HOST, 20.0).state.invite_epoch == room.invite_epoch + 1
    with pytest.raises(errors.NotPermitted):
        host_rotate_invite(room, MOD, 20.0)


def test_hand_queue_is_ordered_and_private(room: RoomState) -> None:
    state = room
    assert state.hand_queue == (LIS, LIS2)
    assert state.snapshot(MOD)["hand_queue"] == [LIS, LIS2]
    listener_view = state.snapshot(SPK)
    assert listener_view["hand_queue"] == []
    assert not any(p["hand_raised"] for p in listener_view["participants"])


def test_state_round_trips_through_records(room: RoomState) -> None:
    restored = RoomState.from_records(
        room.meta_record(), [replace(p) for p in room.participants.values()]
    )
    assert restored == room


def test_abandoned_room_ends_only_when_empty_long_enough() -> None:
    from audio_rooms.domain.transitions import end_if_abandoned

    state = new_room("r", "t", Visibility.OPEN, HOST, now=0.0)
    assert end_if_abandoned(state, 100.0, 600.0).state is state
    ended = end_if_abandoned(state, 601.0, 600.0)
    assert not ended.state.live and ended.events[0].data["reason"] == "abandoned"
    occupied = join(state, LIS)
    assert end_if_abandoned(occupied, 10_000.0, 600.0).state is occupied
