"""Room transitions: ``apply(state, actor, action, now) -> Outcome(state, events)``.

Rules in brief (docs/rooms.md has the full table):

- Ranks: host > moderator > speaker > listener. Moderation acts only on lower ranks, so a
  moderator cannot mute, demote, remove or ban another moderator or the host.
- The room's creator takes the host role whenever they are in the room.
- Guests only listen: they raise no hand, are never invited, promoted or made moderators.
- Hands are for listeners; inviting keeps the hand up until the invitation is answered.
- New speakers come on stage muted; the host opens the room unmuted.
- A moderator's mute can only be lifted by a moderator; the speaker's own mic toggle is separate.
- Remove and ban both take the user out and keep them out of this live room; a ban is also
  written to durable storage by the caller and so holds for new sessions and future joins.
- When the last moderator leaves, the longest-serving speaker becomes a moderator; with no
  speaker left the room ends.

The version increases by one for every transition that changes state. Reactions are not
transitions: they are tallied per room and sent in batches (:mod:`reactions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from audio_rooms import errors
from audio_rooms.domain import actions as a
from audio_rooms.domain import events as ev
from audio_rooms.domain.events import Event
from audio_rooms.domain.roles import LiveStatus, Role, Visibility
from audio_rooms.domain.room import Participant, RoomState, UserId


@dataclass(frozen=True, slots=True)
class Outcome:
    state: RoomState
    events: tuple[Event, ...]


def apply(state: RoomState, actor_id: str, action: a.Action, now: float) -> Outcome:
    """Apply one action by ``actor_id``; raise a typed error if the rules forbid it."""
    if not state.live:
        raise errors.RoomEnded("This room has ended.")
    if isinstance(action, a.Join):
        new_state, events = _join(state, UserId(actor_id), action, now)
    else:
        actor = state.get(actor_id)
        if actor is None:
            raise errors.NotInRoom("You are not in this room.")
        handler = _HANDLERS.get(type(action))
        if handler is None:
            raise errors.UnknownMessageType(f"Unknown action {action.name!r}.")
        new_state, events = handler(state, actor, action, now)
    if new_state is not state:
        new_state = replace(new_state, version=state.version + 1)
    return Outcome(new_state, tuple(events))


Result = tuple[RoomState, list[Event]]
Handler = Callable[[RoomState, Participant, Any, float], Result]


# --- joining and leaving -----------------------------------------------------------------------


def _join(state: RoomState, user_id: UserId, action: a.Join, now: float) -> Result:
    if action.banned:
        raise errors.Banned("You are banned from this room.")
    if user_id in state.removed:
        raise errors.RemovedFromRoom("A moderator removed you from this room.")
    if user_id in state.participants:
        return state, []  # a second connection or a resume: same participant, same role
    if user_id == state.host_id:
        role = Role.HOST
    else:
        _check_admission(state, action)
        role = Role.LISTENER
        if state.count(on_stage=False) >= state.limits.max_listeners:
            raise errors.RoomFull("This room is full.")
    participant = Participant(
        user_id=user_id,
        display_name=action.display_name,
        role=role,
        is_guest=action.is_guest,
        joined_at=now,
        role_since=now,
        self_muted=role is not Role.HOST,
    )
    participants = dict(state.participants)
    participants[user_id] = participant
    new_state = replace(state, participants=participants)
    return new_state, [ev.participant_joined(participant.to_wire(), user_id)]


def _check_admission(state: RoomState, action: a.Join) -> None:
    if action.is_guest and state.visibility is not Visibility.OPEN:
        raise errors.AccountRequired("Sign in to join this room.")
    if action.is_guest and state.accounts_only:
        raise errors.AccountRequired("This room is for signed-in people right now.")
    invited_or_followed = action.followed_by_moderator or action.has_invite
    if state.visibility is Visibility.SOCIAL and not invited_or_followed:
        raise errors.NotAllowedIn("This room is for people its moderators follow.")
    if state.visibility is Visibility.CLOSED and not action.has_invite:
        raise errors.NotAllowedIn("This room needs an invite link.")


def _leave(state: RoomState, actor: Participant, action: a.Leave, now: float) -> Result:
    reason = action.reason if action.reason in ("left", "timeout") else "left"
    new_state, events = _without(state, actor.user_id)
    events.append(ev.participant_left(actor.user_id, reason, actor.role is Role.LISTENER))
    if actor.role.moderates:
        return _ensure_moderator(new_state, events, now)
    return new_state, events


def _without(state: RoomState, user_id: UserId) -> Result:
    """The state with ``user_id`` gone from the room, its hand queue and its invitations."""
    participants = {uid: p for uid, p in state.participants.items() if uid != user_id}
    events: list[Event] = []
    hand_queue = state.hand_queue
    if user_id in hand_queue:
        hand_queue = tuple(u for u in hand_queue if u != user_id)
        events.append(ev.hand_lowered(user_id, None))
    return (
        replace(
            state,
            participants=participants,
            hand_queue=hand_queue,
            invitations=state.invitations - {user_id},
        ),
        events,
    )


def _ensure_moderator(state: RoomState, events: list[Event], now: float) -> Result:
    """The documented rule for a room that has just lost its last moderator."""
    if state.moderators():
        return state, events
    speakers = [p for p in state.participants.values() if p.role is Role.SPEAKER]
    if not speakers:
        events.append(ev.room_ended("no_moderator", None))
        return _ended(state, "no_moderator"), events
    heir = min(speakers, key=lambda p: (p.role_since, p.joined_at, p.user_id))
    promoted = replace(heir, role=Role.MODERATOR, role_since=now)
    events.append(ev.role_changed(heir.user_id, Role.MODERATOR.value, None))
    return _with_participant(state, promoted), events


def _ended(state: RoomState, reason: str) -> RoomState:
    return replace(
        state,
        status=LiveStatus.ENDED,
        end_reason=reason,
        participants={},
        hand_queue=(),
        invitations=frozenset(),
    )


def _with_participant(state: RoomState, participant: Participant) -> RoomState:
    participants = dict(state.participants)
    participants[participant.user_id] = participant
    return replace(state, participants=participants)


# --- hands and invitations ---------------------------------------------------------------------


def _raise_hand(state: RoomState, actor: Participant, action: a.RaiseHand, now: float) -> Result:
    if actor.role is not Role.LISTENER:
        raise errors.NotPermitted("Only listeners raise their hand; you are on stage.")
    _check_not_guest(actor)
    if actor.user_id in state.hand_queue:
        return state, []
    new_state = replace(state, hand_queue=(*state.hand_queue, actor.user_id))
    return new_state, [ev.hand_raised(actor.user_id, actor.to_wire(hand_raised=True))]


def _lower_hand(state: RoomState, actor: Participant, action: a.LowerHand, now: float) -> Result:
    target = UserId(action.target) if action.target else actor.user_id
    if target != actor.user_id and not actor.role.moderates:
        raise errors.NotPermitted("Only moderators lower someone else's hand.")
    if target not in state.hand_queue:
        if target == actor.user_id:
            return state, []
        raise errors.InvalidTarget("That person's hand is not raised.")
    hand_queue = tuple(u for u in state.hand_queue if u != target)
    by = actor.user_id if target != actor.user_id else None
    return replace(state, hand_queue=hand_queue), [ev.hand_lowered(target, by)]


def _invite(state: RoomState, actor: Participant, action: a.InviteToSpeak, now: float) -> Result:
    _require_moderator(actor)
    target = _target(state, action.target)
    if target.role is not Role.LISTENER:
        raise errors.InvalidTarget("That person is already on stage.")
    _check_not_guest(target)
    if target.user_id in state.invitations:
        return state, []
    _check_stage_room(state)
    new_state = replace(state, invitations=state.invitations | {target.user_id})
    hand = target.user_id in state.hand_queue
    return new_state, [ev.invited(target.user_id, actor.user_id, target.to_wire(hand))]


def _accept(state: RoomState, actor: Participant, action: a.AcceptInvitation, now: float) -> Result:
    if actor.user_id not in state.invitations:
        raise errors.NoInvitation("You have no invitation to speak.")
    _check_not_guest(actor)
    _check_stage_room(state)
    new_state, events = _without_hand_and_invitation(state, actor.user_id)
    speaker = replace(actor, role=Role.SPEAKER, role_since=now, self_muted=True)
    events.insert(
        0, ev.role_changed(actor.user_id, Role.SPEAKER.value, actor.user_id, speaker.to_wire())
    )
    return _with_participant(new_state, speaker), events


def _decline(
    state: RoomState, actor: Participant, action: a.DeclineInvitation, now: float
) -> Result:
    if actor.user_id not in state.invitations:
        raise errors.NoInvitation("You have no invitation to speak.")
    new_state, events = _without_hand_and_invitation(state, actor.user_id)
    events.insert(0, ev.invitation_declined(actor.user_id))
    return new_state, events


def _without_hand_and_invitation(state: RoomState, user_id: UserId) -> Result:
    events: list[Event] = []
    hand_queue = state.hand_queue
    if user_id in hand_queue:
        hand_queue = tuple(u for u in hand_queue if u != user_id)
        events.append(ev.hand_lowered(user_id, None))
    return replace(state, hand_queue=hand_queue, invitations=state.invitations - {user_id}), events


def _check_not_guest(participant: Participant) -> None:
    if participant.is_guest:
        raise errors.GuestsOnlyListen("Guests only listen; sign in to speak.")


def _check_stage_room(state: RoomState) -> None:
    if state.count(on_stage=True) >= state.limits.max_speakers:
        raise errors.StageFull("The stage is full.")


# --- roles -------------------------------------------------------------------------------------


def _move_to_audience(
    state: RoomState, actor: Participant, action: a.MoveToAudience, now: float
) -> Result:
    if action.target == actor.user_id:
        if actor.role is Role.HOST:
            raise errors.NotPermitted("The host stays on stage; end the room or leave instead.")
        if actor.role is Role.LISTENER:
            raise errors.InvalidTarget("You are already in the audience.")
        target = actor
    else:
        target = _moderated_target(state, actor, action.target)
        if target.role is Role.LISTENER:
            raise errors.InvalidTarget("That person is already in the audience.")
    listener = replace(
        target, role=Role.LISTENER, role_since=now, self_muted=True, muted_by_moderator=False
    )
    new_state = _with_participant(state, listener)
    events = [ev.role_changed(target.user_id, Role.LISTENER.value, actor.user_id)]
    if target.role.moderates:
        return _ensure_moderator(new_state, events, now)
    return new_state, events


def _make_moderator(
    state: RoomState, actor: Participant, action: a.MakeModerator, now: float
) -> Result:
    target = _moderated_target(state, actor, action.target)
    _check_not_guest(target)
    if target.role is not Role.SPEAKER:
        raise errors.InvalidTarget("Only speakers on stage can be made moderators.")
    moderator = replace(target, role=Role.MODERATOR, role_since=now)
    events = [ev.role_changed(target.user_id, Role.MODERATOR.value, actor.user_id)]
    return _with_participant(state, moderator), events


def _unmake_moderator(
    state: RoomState, actor: Participant, action: a.UnmakeModerator, now: float
) -> Result:
    if action.target == actor.user_id:
        if actor.role is not Role.MODERATOR:
            raise errors.InvalidTarget("You are not a moderator.")
        target = actor
    else:
        target = _moderated_target(state, actor, action.target)
        if target.role is not Role.MODERATOR:
            raise errors.InvalidTarget("That person is not a moderator.")
    if len(state.moderators()) == 1:
        raise errors.InvalidTarget("The room needs at least one moderator.")
    speaker = replace(target, role=Role.SPEAKER, role_since=now)
    events = [ev.role_changed(target.user_id, Role.SPEAKER.value, actor.user_id)]
    return _with_participant(state, speaker), events


# --- microphones -------------------------------------------------------------------------------


def _mute(state: RoomState, actor: Participant, action: a.Mute, now: float) -> Result:
    if action.target == actor.user_id:
        if not actor.role.on_stage:
            raise errors.NotPermitted("Listeners have no microphone on stage.")
        if actor.self_muted:
            return state, []
        muted = replace(actor, self_muted=True)
    else:
        target = _moderated_target(state, actor, action.target)
        if not target.role.on_stage:
            raise errors.InvalidTarget("That person is not on stage.")
        if target.muted_by_moderator:
            return state, []
        muted = replace(target, muted_by_moderator=True)
    return _with_participant(state, muted), [_mute_event(muted, actor)]


def _unmute(state: RoomState, actor: Participant, action: a.Unmute, now: float) -> Result:
    if action.target == actor.user_id:
        if not actor.role.on_stage:
            raise errors.NotPermitted("Listeners have no microphone on stage.")
        if actor.muted_by_moderator:
            raise errors.MutedByModerator("A moderator muted you; only a moderator can unmute.")
        if not actor.self_muted:
            return state, []
        unmuted = replace(actor, self_muted=False)
    else:
        target = _moderated_target(state, actor, action.target)
        if not target.muted_by_moderator:
            return state, []
        unmuted = replace(target, muted_by_moderator=False)
    return _with_participant(state, unmuted), [_mute_event(unmuted, actor)]


def _mute_event(participant: Participant, actor: Participant) -> Event:
    return ev.mute_changed(
        participant.user_id, participant.self_muted, participant.muted_by_moderator, actor.user_id
    )


# --- removal and the end -----------------------------------------------------------------------


def _remove(state: RoomState, actor: Participant, action: a.TargetedAction, now: float) -> Result:
    target = _moderated_target(state, actor, action.target)
    banned = isinstance(action, a.Ban)
    new_state, events = _without(state, target.user_id)
    new_state = replace(new_state, removed=new_state.removed | {target.user_id})
    events.append(ev.participant_removed(target.user_id, actor.user_id, banned))
    return new_state, events


def _end_room(state: RoomState, actor: Participant, action: a.EndRoom, now: float) -> Result:
    _require_moderator(actor)
    return _ended(state, "ended_by_moderator"), [ev.room_ended("ended_by_moderator", actor.user_id)]


# --- the door ----------------------------------------------------------------------------------


def _set_accounts_only(
    state: RoomState, actor: Participant, action: a.SetAccountsOnly, now: float
) -> Result:
    _require_moderator(actor)
    if state.accounts_only == action.enabled:
        return state, []
    new_state = replace(state, accounts_only=action.enabled)
    return new_state, [ev.accounts_only_changed(action.enabled, actor.user_id)]


def _set_interconnected(
    state: RoomState, actor: Participant, action: a.SetInterconnected, now: float
) -> Result:
    if actor.role is not Role.HOST:
        raise errors.NotPermitted("Only the host opens a room to other servers.")
    if state.interconnected == action.enabled:
        return state, []
    new_state = replace(state, interconnected=action.enabled)
    return new_state, [ev.interconnected_changed(action.enabled, actor.user_id)]


def _rotate_invite(
    state: RoomState, actor: Participant, action: a.RotateInvite, now: float
) -> Result:
    _require_moderator(actor)
    return _invite_rotated(state, actor.user_id)


def _invite_rotated(state: RoomState, by: str) -> Result:
    return replace(state, invite_epoch=state.invite_epoch + 1), [ev.invite_rotated(by)]


# --- the operator --------------------------------------------------------------------------------
# The operator acts from outside the room (the admin CLI), so these are not participant actions.

ADMIN = "admin"


def admin_end(state: RoomState, now: float) -> Outcome:
    if not state.live:
        raise errors.RoomEnded("This room has already ended.")
    ended = replace(_ended(state, "ended_by_admin"), version=state.version + 1)
    return Outcome(ended, (ev.room_ended("ended_by_admin", ADMIN),))


def end_if_abandoned(
    state: RoomState, now: float, empty_for: float, audience: int = 0
) -> Outcome:
    """End a live room that nobody has been in for ``empty_for`` seconds since it went live
    (a host who opened a room and never came). Rooms people left end by the moderator rule.
    ``audience`` is the listener count, which the stage-only ``state`` does not hold."""
    empty = not state.participants and audience == 0
    if state.live and empty and now - state.created_at >= empty_for:
        ended = replace(_ended(state, "abandoned"), version=state.version + 1)
        return Outcome(ended, (ev.room_ended("abandoned", None),))
    return Outcome(state, ())


def host_rotate_invite(state: RoomState, host_id: str, now: float) -> Outcome:
    """The host voids the invite links from outside the room (not connected to it)."""
    if not state.live:
        raise errors.RoomEnded("This room has ended.")
    if host_id != state.host_id:
        raise errors.NotPermitted("Only the host and moderators can do that.")
    new_state, events = _invite_rotated(state, host_id)
    return Outcome(replace(new_state, version=state.version + 1), tuple(events))


def admin_remove(state: RoomState, user_id: str, now: float) -> Outcome:
    """Take a user out of a live room and keep them out (a server-wide ban)."""
    target = state.get(user_id)
    if not state.live or target is None:
        return Outcome(state, ())
    new_state, events = _without(state, target.user_id)
    new_state = replace(new_state, removed=new_state.removed | {target.user_id})
    events.append(ev.participant_removed(target.user_id, ADMIN, True))
    if target.role.moderates:
        new_state, events = _ensure_moderator(new_state, events, now)
    return Outcome(replace(new_state, version=state.version + 1), tuple(events))


# --- helpers -----------------------------------------------------------------------------------


def _require_moderator(actor: Participant) -> None:
    if not actor.role.moderates:
        raise errors.NotPermitted("Only the host and moderators can do that.")


def _target(state: RoomState, user_id: str) -> Participant:
    target = state.get(user_id)
    if target is None:
        raise errors.InvalidTarget("That person is not in this room.")
    return target


def _moderated_target(state: RoomState, actor: Participant, user_id: str) -> Participant:
    _require_moderator(actor)
    if user_id == actor.user_id:
        raise errors.InvalidTarget("You cannot do that to yourself.")
    target = _target(state, user_id)
    if not actor.role.outranks(target.role):
        raise errors.NotPermitted(f"A {actor.role.value} cannot do that to a {target.role.value}.")
    return target


_HANDLERS: dict[type[a.Action], Handler] = {
    a.Leave: _leave,
    a.RaiseHand: _raise_hand,
    a.LowerHand: _lower_hand,
    a.InviteToSpeak: _invite,
    a.AcceptInvitation: _accept,
    a.DeclineInvitation: _decline,
    a.MoveToAudience: _move_to_audience,
    a.MakeModerator: _make_moderator,
    a.UnmakeModerator: _unmake_moderator,
    a.Mute: _mute,
    a.Unmute: _unmute,
    a.Remove: _remove,
    a.Ban: _remove,
    a.EndRoom: _end_room,
    a.SetAccountsOnly: _set_accounts_only,
    a.SetInterconnected: _set_interconnected,
    a.RotateInvite: _rotate_invite,
}
