from dialer.ownership import CampaignOwnership


async def test_one_owner_per_campaign_and_takeover_when_the_owner_dies(database_url: str):
    a, b = CampaignOwnership(database_url), CampaignOwnership(database_url)
    try:
        assert await a.try_acquire(1)
        assert not await b.try_acquire(1)
        assert await b.try_acquire(2)  # other campaigns are free
        assert await a.still_owner(1)
        await a._conn.close()  # the owning node's connection dies
        assert not await a.still_owner(1)
        assert await b.try_acquire(1)
        await b.release(1)
        assert await a.try_acquire(1)
    finally:
        await a.close()
        await b.close()
