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


def test_reprompt_rebuilds_either_prompt_from_the_label_files(tmp_path, capsys):
    import json

    from wildactor.cli import main

    cfg = WorldConfig(actors=2, clips_per_actor=2, num_frames=3, size=32, ref_size=32, heldout_fraction=0.5)
    make_world(cfg, tmp_path / "w", progress=False)
    assert main(["world", "reprompt", "--data", str(tmp_path / "w"), "--prompts", "described"]) == 0
    assert main(["world", "reprompt", "--data", str(tmp_path / "w"), "--prompts", "person"]) == 0
    for stem in ("manifest", "manifest_train", "manifest_heldout"):
        made = (tmp_path / "w" / f"{stem}.jsonl").read_text().splitlines()
        same = (tmp_path / "w" / f"{stem}_described.jsonl").read_text().splitlines()
        assert [json.loads(x) for x in same] == [
            json.loads(x) for x in made
        ]  # described: a byte-exact rebuild
        person = [json.loads(x) for x in (tmp_path / "w" / f"{stem}_person.jsonl").read_text().splitlines()]
        assert len(person) == len(made) > 0
        for record, original in zip(person, map(json.loads, made)):
            assert record["prompt"].startswith("A person ")
            assert {k: v for k, v in record.items() if k != "prompt"} == {
                k: v for k, v in original.items() if k != "prompt"
            }
            who = describe_actor(Actor.from_id(record["actor_id"]))
            assert original["prompt"] == who[0].upper() + who[1:] + record["prompt"][len("A person") :]
    code = main(["world", "reprompt", "--data", str(tmp_path / "missing"), "--prompts", "person"])
    assert code != 0 and "world make" in capsys.readouterr().err
