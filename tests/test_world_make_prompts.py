"""`world make --prompts person`: prompts carry scene and motion only, so identity must come from references."""

from wildactor.data.schema import read_manifest
from wildactor.world.actors import Actor
from wildactor.world.make import WorldConfig, make_world
from wildactor.world.prompts import describe_actor


def test_person_prompts_do_not_describe_the_actor(tmp_path):
    cfg = WorldConfig(actors=2, clips_per_actor=2, num_frames=3, size=32, ref_size=32, prompts="person")
    make_world(cfg, tmp_path / "w", progress=False)
    records = read_manifest(tmp_path / "w" / "manifest.jsonl")
    assert len(records) == 4
    for record in records:
        assert record.prompt.startswith("A person ")
        assert describe_actor(Actor.from_id(record.actor_id)) not in record.prompt.lower()

    described = WorldConfig(actors=1, clips_per_actor=1, num_frames=3, size=32, ref_size=32)
    make_world(described, tmp_path / "d", progress=False)
    (record,) = read_manifest(tmp_path / "d" / "manifest.jsonl")
    assert describe_actor(Actor.from_id(record.actor_id)) in record.prompt.lower()
