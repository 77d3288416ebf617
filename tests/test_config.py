"""The TOML run configuration: every parameter documented, round trips, clear errors, the command."""
from __future__ import annotations

import dataclasses
import logging

import pytest

from trackcore.cli.main import main
from trackcore.config import tomllib
from trackcore.config import (RunConfig, config_from_dict, config_hash, configure_logging, dump_config, load_config,
                              parameters, save_config)
from trackcore.errors import InputError
from trackcore.reco.ckf import CkfConfig
from trackcore.reco.hashing import HashingConfig
from trackcore.reco.pipeline import ReconstructionConfig, default_seeding
from trackcore.reco.seeding import SeedingConfig


def test_every_dataclass_field_is_a_documented_parameter():
    by_section = {}
    for p in parameters():
        by_section.setdefault(p.section, set()).add(p.name)
        assert p.doc, f"{p.section}.{p.name} has no description"
    assert by_section["reconstruction.seeding"] == {f.name for f in dataclasses.fields(SeedingConfig)}
    assert by_section["reconstruction.ckf"] == {f.name for f in dataclasses.fields(CkfConfig)}
    assert by_section["reconstruction.hashing"] == {f.name for f in dataclasses.fields(HashingConfig)} - {"seeding"}
    assert by_section["reconstruction"] == {"seeding_strategy", "extra_passes", "classify_seeds", "min_hits_unfitted",
                                            "drop_seed_labels", "split_clusters", "hit_errors",
                                            "low_pt_threshold", "low_pt_max_chi2_ndf", "short_track_max_hits",
                                            "short_track_max_chi2_ndf"}
    units = {(p.section.split(".")[-1], p.name): p.unit for p in parameters()}
    assert units[("seeding", "r_min")] == "mm" and units[("seeding", "min_pt")] == "GeV"
    assert units[("seeding", "bz")] == "T" and units[("seeding", "delta_inv_helix_diameter")] == "1/mm"
    assert units[("ckf", "mass")] == "GeV" and units[("ckf", "max_turn")] == "rad"
    assert units[("ckf", "chi2_max")] == ""
    # defaults are the pipeline's, not the bare dataclass's
    assert next(p for p in parameters() if p.name == "min_pt").default == default_seeding().min_pt


def test_dump_lists_every_parameter_with_unit_and_default_and_reads_back():
    text = dump_config()
    data = tomllib.loads(text)
    assert data["reconstruction"]["seeding"]["r_min"] == 20.0
    assert "# [mm] space points at smaller radius are ignored (default 20.0)" in text
    assert "# [GeV] mass hypothesis for material effects (pion) (default 0.13957)" in text
    for p in parameters():
        assert f"\n{p.name} = " in text or p.name == "extra_passes", p.name
    assert "\n[[reconstruction.extra_passes]]\nmin_pt = 0.1\nd0_max = 2.0\nckf = { min_measurements = 6, max_holes = 1, rescue_min_measurements = 3 }\n" in text
    assert config_hash(config_from_dict(data)) == config_hash(None) == config_hash(RunConfig())


def test_changed_configuration_round_trips(tmp_path):
    reco = ReconstructionConfig(seeding=dataclasses.replace(default_seeding(), min_pt=0.4, volumes=None),
                                ckf=dataclasses.replace(CkfConfig(), chi2_max=12.5, refine=False),
                                extra_passes=({"min_pt": 0.2, "ckf": {"max_holes": 1}}, {"min_pt": 0.1}),
                                hashing=HashingConfig(method="lsh", query_layers=(0, 1)))
    run = RunConfig(reconstruction=reco, detector="generic", formats=("parquet", "root"))
    path = save_config(run, tmp_path)
    back = load_config(path)
    assert back.reconstruction.seeding.volumes is None and back.reconstruction.seeding.min_pt == 0.4
    assert back.reconstruction.ckf.chi2_max == 12.5 and back.reconstruction.ckf.refine is False
    assert back.reconstruction.extra_passes == reco.extra_passes
    assert back.reconstruction.hashing.query_layers == (0, 1)
    assert (back.detector, back.formats) == ("generic", ("parquet", "root"))
    assert config_hash(back) == config_hash(run) != config_hash(None)
    # backend and formats do not change the outputs' content, so not the hash either
    assert config_hash(dataclasses.replace(run, backend="numpy", formats=("csv",))) == config_hash(run)
    no_passes = load_config(save_config(ReconstructionConfig(extra_passes=()), tmp_path / "b"))
    assert no_passes.reconstruction.extra_passes == ()


def test_partial_file_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[reconstruction.seeding]\nmin_pt = 1\n")
    cfg = load_config(path)
    assert cfg.reconstruction.seeding.min_pt == 1.0 and isinstance(cfg.reconstruction.seeding.min_pt, float)
    assert cfg.reconstruction.seeding.z0_max == default_seeding().z0_max
    assert cfg.reconstruction.ckf == ReconstructionConfig().ckf


@pytest.mark.parametrize("text, match", [
    ("[reconstruction.ckf]\nchi2_maxx = 3\n", r"unknown key\(s\) \['chi2_maxx'\] in \[reconstruction.ckf\]"),
    ("[reconstruction.ckf]\nmax_holes = 1.5\n", r"reconstruction.ckf.max_holes: expected int, got float"),
    ("[reconstruction.seeding]\nvolumes = 7\n", r"reconstruction.seeding.volumes: expected a list"),
    ("[reconstruction.seeding]\nmin_pt = -1.0\n", r"SeedingConfig.min_pt must be > 0"),
    ("[reconstruction]\nseeding_strategy = \"magic\"\n", r"seeding_strategy must be 'grid' or 'hashing'"),
    ("[reconstruction]\nextra_passes = [{ min_ptt = 1.0 }]\n", r"extra_passes\[0\]"),
    ("[run]\nformats = [\"hdf5\"]\n", r"run.formats"),
    ("[runn]\n", r"unknown table"),
    ("[run\n", r"not valid TOML"),
])
def test_bad_files_name_the_file_and_the_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        load_config(path)
    assert "bad.toml" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read configuration"):
        load_config(tmp_path / "none.toml")


def test_config_command(tmp_path, capsys):
    assert main(["config", "--dump"]) == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text)["reconstruction"]["ckf"]["chi2_max"] == ReconstructionConfig().ckf.chi2_max
    path = tmp_path / "mine.toml"
    path.write_text(text.replace("chi2_max = 15.0", "chi2_max = 7.0"))
    assert main(["config", str(path)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["reconstruction"]["ckf"]["chi2_max"] == 7.0
    assert main(["config", "--list"]) == 0
    table = capsys.readouterr().out
    assert any(line.split()[:3] == ["reconstruction.seeding", "r_min", "mm"] for line in table.splitlines())
    assert main(["config"]) == 2
    assert "give --dump" in capsys.readouterr().err


def test_configure_logging_levels():
    logger = logging.getLogger("trackcore")
    try:
        assert configure_logging(-1) == logging.WARNING and logger.level == logging.WARNING
        assert configure_logging(1) == logging.DEBUG
        assert configure_logging(0) == logging.INFO
        assert len([h for h in logger.handlers if type(h).__name__ == "_TqdmHandler"]) == 1
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
