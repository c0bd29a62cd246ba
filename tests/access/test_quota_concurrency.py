"""The household quota under concurrency, on committed sessions as production runs them:
twenty members of one household at two gates in the same instant, one pass left."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import PassageRequest, Sender
from fengchao.access.models import AccessEvent, QuotaUse
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.db import finish
from fengchao.registry.models import Person, Relation
from tests.access.conftest import make_gates
from tests.conftest import build_grid

CROWD = 20


def test_twenty_concurrent_decisions_take_the_last_pass_once(own_database: Engine) -> None:
    sessions = sessionmaker(bind=own_database, expire_on_commit=False)
    with sessions() as session:
        grid = build_grid(session)
        gates = make_gates(session, grid)
        members = [
            Person(community_id=grid.community.id, household_id=grid.h5_101.id,
                   name=f"家人{i}", relation=Relation.family)
            for i in range(CROWD)
        ]  # fmt: skip
        session.add_all(members)
        access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=grid.community.id,
                         level="closed")  # fmt: skip
        session.commit()
        ids = [m.id for m in members]
    senders = [Sender.device(gates.east_device), Sender.device(gates.garage_device)]
    gate_ids = [gates.east.id, gates.garage.id]
    start = threading.Barrier(CROWD)
    answers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def pass_gate(i: int) -> None:
        try:
            start.wait()
            with sessions() as session:
                answer = flows.decide(
                    session=session,
                    request=PassageRequest(
                        gate_id=gate_ids[i % 2],
                        direction="out",
                        method="person",
                        value=str(ids[i]),
                        idempotency_key=f"crowd-{i}",
                    ),
                    sender=senders[i % 2],
                )
                finish(session)
            with lock:
                answers.append(answer.decision)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=pass_gate, args=(i,)) for i in range(CROWD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(answers).count("allow") == 1
    assert answers.count("deny") == CROWD - 1
    with Session(own_database) as session:
        assert session.scalar(select(func.sum(QuotaUse.used))) == 1
        refused = session.scalars(
            select(AccessEvent.reasons).where(AccessEvent.decision == "deny")
        ).all()
        assert len(refused) == CROWD - 1 and all("quota_used" in r for r in refused)
