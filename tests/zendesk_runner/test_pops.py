"""Where pops go: the owning tab by default, or Talk Partner Edition with the tab as fallback."""

from dataclasses import replace

import pytest

from tests.zendesk_runner.conftest import Rig, contact


@pytest.mark.parametrize("talk_partner", [True, False])
async def test_pops_through_talk_partner_fall_back_to_the_tab(rig: Rig, talk_partner: bool) -> None:
    rig.sandbox.config.talk_partner_edition = talk_partner
    user = rig.customer("Ann Caller", "+447700900123")
    deps = replace(rig.deps(), pop_via="zendesk")
    result = await rig.run(contact(("incoming",)), deps=deps)
    assert not result.done
    tab_pops = [p for r in rig.reports for p in r.pops]
    shown = rig.sandbox.pops_for(rig.agent_id)
    if talk_partner:
        assert [(p.kind, p.target_id) for p in shown] == [("user", user)] and tab_pops == []
    else:
        assert shown == [] and [(p.target, p.id) for p in tab_pops] == [("user", user)]


async def test_pops_go_to_the_owning_tab_by_default(rig: Rig) -> None:
    user = rig.customer("Ann Caller", "+447700900123")
    await rig.run(contact(("incoming",)))
    assert [(p.target, p.id) for r in rig.reports for p in r.pops] == [("user", user)]
    assert rig.sandbox.pops_for(rig.agent_id) == []
