from dialer.inbound import identify_caller
from tests.dialer.test_leads import make_cases


async def test_caller_is_identified_over_all_phones_and_linked_persons(conn):
    cases = await make_cases(
        conn,
        [
            [("+393331110000", ["Europe/Rome"]), ("+393332220000", ["Europe/Rome"])],
            [("+393333330000", ["Europe/Rome"])],
        ],
        [100, 900],
    )
    match = await identify_caller(conn, "+393332220000")
    assert match is not None and match.case_id == cases[0] and match.relation == "debtor"
    # The first debtor guarantees the second case: his call pops the larger, open case.
    debtor = await conn.fetchval("SELECT debtor_id FROM cases WHERE id = $1", cases[0])
    await conn.execute(
        "INSERT INTO debtor_links (case_id, debtor_id, relation) VALUES ($1, $2, 'guarantor')",
        cases[1],
        debtor,
    )
    match = await identify_caller(conn, "+393331110000")
    assert match.case_id == cases[1] and match.relation == "guarantor"
    assert set(match.case_ids) == set(cases)
    assert await identify_caller(conn, "+12125550000") is None
