"""The checks (DESIGN.md invariants 1-5 and the Zendesk end state), run after every step and
at the end of a run. Each appends a one-line description to `run.violations`."""

import re
from typing import TYPE_CHECKING, Any

from daemon.core.views import snapshot
from daemon.zendesk.runner import DONE, FAILED

if TYPE_CHECKING:
    from tests.sim.scenario import Run

DETAILS = "Amazon Connect Contact Details"
MARKER = re.compile(r"Switchboard ([0-9a-f]+)/([^/\s]+)/")
EXTERNAL = re.compile(r"switchboard:([0-9a-f]+):(.+)")
#: The longest a live tab's frame may wait unread while its node is not paused (frames a
#: tab sent are dropped if it closes meanwhile).
MAX_UNREAD_SECONDS = 20.0


async def check_step(run: "Run") -> None:
    """One owner, a known owner, epochs that never fall (per store life)."""
    ccp = {(c.agent, c.contact_id): c for c in run.contacts}
    for agent in run.agents:
        state = await run.stored(agent)
        if state is None:
            continue
        for cid, contact in state.contacts.items():
            if (agent, cid) in ccp and "connected" in contact.events_seen:
                ccp[agent, cid].answered = True
            if contact.owner_tab is not None and contact.owner_tab not in state.tabs:
                run.violations.append(f"{agent}/{cid}: owner {contact.owner_tab} is no tab")
            life = (run.wipes, agent, cid)
            before = run.stored_epochs.get(life, 0)
            if contact.epoch < before:
                run.violations.append(f"{agent}/{cid}: stored epoch fell {before}->{contact.epoch}")
            run.stored_epochs[life] = max(before, contact.epoch)
    for tab in run.live_tabs():
        assert tab.pipe is not None
        if tab.pipe.unread_for() > MAX_UNREAD_SECONDS:
            run.violations.append(
                f"tab {tab.name} ({tab.agent}): a frame unread for {tab.pipe.unread_for():.0f} s"
            )
    owners: dict[tuple[str, str, int], str] = {}
    for tab in run.live_tabs():
        state = await run.stored(tab.agent)
        held = state.tabs.get(tab.tab_id or "") if state is not None else None
        if held is None or tab.pipe is None or held.conn_id != tab.pipe.conn_id:
            # A connection the tab's id has moved on from (a duplicate took the id of a tab
            # on a node presumed dead): its view is stale until its node notices, but it can
            # no longer act, and it is closed (4009) soon after its node runs again.
            if held is not None and tab.pipe is not None and tab.node is not None:
                paused = tab.node.store.paused_seconds
                since, paused_then = run.moved_on.setdefault(
                    tab.pipe.conn_id, (run.world.clock.now, paused())
                )
                running = run.world.clock.now - since - (paused() - paused_then)
                if running > MAX_UNREAD_SECONDS:
                    run.violations.append(
                        f"tab {tab.name} ({tab.agent}): open {running:.0f} s after its id moved on"
                    )
            continue
        for cid, view in tab.view.items():
            if view.get("owner_tab") != tab.tab_id:
                continue
            key = (tab.agent, cid, view["epoch"])
            if key in owners and owners[key] != tab.name:
                run.violations.append(
                    f"{tab.agent}/{cid}: tabs {owners[key]} and {tab.name} both own epoch "
                    f"{view['epoch']}"
                )
            owners[key] = tab.name


async def check_end(run: "Run") -> None:
    await check_step(run)
    _check_views(run, await _states(run))
    await _check_zendesk(run)


async def _states(run: "Run") -> dict[str, Any]:
    return {agent: await run.stored(agent) for agent in run.agents}


def _check_views(run: "Run", states: dict[str, Any]) -> None:
    """Every open tab shows what the daemon holds (gap-free delivery, invariant 4)."""
    live = frozenset(n.id for n in run.world.live())
    for tab in run.live_tabs():
        state = states.get(tab.agent)
        if state is None:
            continue
        want = {
            c.contact_id: c.model_dump(mode="json", exclude_none=True)
            for c in snapshot(state, live).contacts
        }
        if tab.view != want:
            diff = sorted(
                cid for cid in set(want) | set(tab.view) if want.get(cid) != tab.view.get(cid)
            )
            run.violations.append(f"tab {tab.name} of {tab.agent}: view differs on {diff}")


async def _check_zendesk(run: "Run") -> None:
    """One ticket, user, voice comment and details note per answered contact; nothing on
    another contact's ticket; every finished contact's workflow done (invariants 2, 3, 5)."""
    sandbox, store = run.world.sandbox, run.world.store
    tickets = list(sandbox.tickets.values())
    users = [u for u in sandbox.users.values() if u.role == "end-user"]
    pending = set(await store.workflows_list())
    for contact in run.contacts:
        agent, cid = contact.agent, contact.contact_id
        identity = run.scope(agent).of(cid)
        mine = [t for t in tickets if t.external_id == identity.external_id]
        exact = contact.answered and not contact.lost
        where = f"{agent}/{cid}"
        if len(mine) > 1 or (exact and len(mine) != 1):
            run.violations.append(f"{where}: {len(mine)} tickets")
        for ticket in mine:
            voice = [c for c in ticket.comments if c.type == "VoiceComment"]
            details = [c for c in ticket.comments if c.body.startswith(DETAILS)]
            if len(voice) > 1 or (exact and len(voice) != 1):
                run.violations.append(f"{where}: {len(voice)} voice comments on {ticket.id}")
            if len(details) > 1 or (exact and len(details) != 1):
                run.violations.append(f"{where}: {len(details)} details notes on {ticket.id}")
        created = [u for u in users if u.external_id == identity.external_id]
        if len(created) > 1:
            run.violations.append(f"{where}: created {len(created)} users")
        callers = [u for u in users if u.phone == contact.phone]
        sharing = sum(c.phone == contact.phone for c in run.contacts)  # a hostile twin's
        if sharing == 1 and (len(callers) > 1 or (exact and len(callers) != 1)):
            run.violations.append(f"{where}: {len(callers)} users with {contact.phone}")
        if contact.lost or (contact.wiped and (agent, cid) not in pending):
            continue
        journal = await store.journal_read(agent, cid)
        if FAILED in journal:
            run.violations.append(f"{where}: workflow failed: {journal[FAILED]}")
        elif journal.get(DONE) is not True or (agent, cid) in pending:
            run.violations.append(f"{where}: workflow not done")
    for ticket in tickets:
        owner = EXTERNAL.fullmatch(ticket.external_id or "")
        for comment in ticket.comments:
            for digest, cid in MARKER.findall(comment.body):
                if owner is None or (digest, cid) != owner.groups():
                    run.violations.append(
                        f"ticket {ticket.id} ({ticket.external_id}) has a comment of {cid}"
                    )
