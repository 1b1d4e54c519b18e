"""Training checkpoints: safetensors and JSON only, written atomically, loaded without unpickling.

Layout of a run directory::

    checkpoints/
      step-000123/
        model.safetensors      weights (a tied LM head is stored once; see ``aliases`` in state.json)
        optimizer.safetensors  optimizer state tensors, flattened as "state.<param index>.<key>"
        rng.safetensors        torch CPU (and CUDA) RNG states (ByteTensors)
        state.json             step, data position, configs, optimizer param_groups and scalars,
                               Python/NumPy RNG states, best-so-far; written last
      latest                   text file naming the newest complete checkpoint directory
      best                     text file naming the checkpoint with the lowest validation loss

A checkpoint is written into ``checkpoints/.tmp-step-000123-XXXX/``, every file fsynced, then the
directory is renamed into place with ``os.replace`` (atomic on POSIX) and only then the ``latest``
pointer is replaced (write a temporary file, fsync, ``os.replace``). A process killed at any point
leaves the previous checkpoint and pointer intact; stale ``.tmp-*`` folders are removed by the next
save. Loading reads safetensors and JSON only: nothing from disk is ever unpickled.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ValidationError

FORMAT = "preflight-checkpoint/1"
CKPT_DIR = "checkpoints"
STEP_PREFIX = "step-"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temporary file in the same folder, fsync, rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _unwrap(model):
    """The plain module under DDP/FSDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and type(model).__name__ in ("DistributedDataParallel", "DataParallel"):
            model = model.module
        else:
            return model


def model_tensors(model, state: dict | None = None) -> tuple[dict, dict[str, str]]:
    """The state dict (or a given full ``state``, e.g. gathered from FSDP shards) as contiguous CPU
    tensors with shared tensors (a tied LM head) kept once, and ``aliases``: dropped name -> kept name."""
    state = _unwrap(model).state_dict() if state is None else state
    tensors: dict = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tuple(tensor.stride()), tensor.dtype) if tensor.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous()
    return tensors, aliases


def _optimizer_tensors(optimizer, sd: dict | None = None) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` (or a given full one; FSDP keys its state by parameter name,
    plain PyTorch by index) into tensors (safetensors) and the JSON rest."""
    import torch

    sd = optimizer.state_dict() if sd is None else sd
    tensors: dict = {}
    scalars: dict = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    groups = []
    for group in sd["param_groups"]:
        clean = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                tensors[f"group.{len(groups)}.{key}"] = value.detach().to("cpu").contiguous()
                clean[key] = {"__tensor__": f"group.{len(groups)}.{key}"}
            elif isinstance(value, tuple):
                clean[key] = {"__tuple__": list(value)}
            else:
                clean[key] = value
        groups.append(clean)
    return tensors, {"param_groups": groups, "scalars": scalars, "class": type(optimizer).__name__}


def _optimizer_state_dict(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, tensor in tensors.items():
        if name.startswith("state."):
            idx, key = name[len("state."):].rsplit(".", 1)
            state.setdefault(int(idx) if idx.isdigit() else idx, {})[key] = tensor
    for name, value in meta.get("scalars", {}).items():
        idx, key = name.rsplit(".", 1)
        state.setdefault(int(idx) if idx.isdigit() else idx, {})[key] = value
    groups = []
    for group in meta["param_groups"]:
        clean = {}
        for key, value in group.items():
            if isinstance(value, dict) and "__tensor__" in value:
                clean[key] = tensors[value["__tensor__"]]
            elif isinstance(value, dict) and "__tuple__" in value:
                clean[key] = tuple(value["__tuple__"])
            else:
                clean[key] = value
        groups.append(clean)
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict, dict]:
    """(tensors, json) capturing torch CPU/CUDA, NumPy and Python RNG states."""
    import numpy as np
    import torch

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = st
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, pystate, gauss_next = random.getstate()
    meta = {"numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
            "python": [version, list(pystate), gauss_next]}
    return tensors, meta


def set_rng_state(tensors: dict, meta: dict) -> None:
    import numpy as np
    import torch

    if "torch_cpu" in tensors:
        torch.set_rng_state(tensors["torch_cpu"])
    cuda = sorted((k for k in tensors if k.startswith("torch_cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in cuda][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)
    if meta.get("numpy"):
        kind, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if meta.get("python"):
        version, pystate, gauss_next = meta["python"]
        random.setstate((version, tuple(pystate), gauss_next))


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors on CPU and the JSON state."""

    path: Path
    step: int
    model: dict
    aliases: dict[str, str]
    optimizer: dict | None
    rng_tensors: dict
    state: dict = field(default_factory=dict)

    def model_state_dict(self) -> dict:
        sd = dict(self.model)
        for alias, kept in self.aliases.items():
            sd[alias] = sd[kept]
        return sd

    def restore_model(self, model) -> None:
        _unwrap(model).load_state_dict(self.model_state_dict(), strict=True)

    def restore_optimizer(self, optimizer) -> None:
        if self.optimizer is not None:
            optimizer.load_state_dict(self.optimizer)

    def restore_rng(self) -> None:
        set_rng_state(self.rng_tensors, self.state.get("rng", {}))


def checkpoints_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CKPT_DIR


def _step_name(step: int) -> str:
    return f"{STEP_PREFIX}{int(step):06d}"


def save(run_dir: str | os.PathLike, model, optimizer=None, *, step: int, state: dict | None = None,
         val_loss: float | None = None, keep_last: int = 2, best: bool = False, save_rng: bool = True,
         model_state: dict | None = None, optimizer_state: dict | None = None) -> Path:
    """Write a checkpoint of ``model`` (+ ``optimizer``, RNG states and the JSON-ready ``state``: data
    position, configs, scheduler step, best-so-far) for ``step`` atomically; point ``latest`` at it,
    and ``best`` too when ``best``. Keeps the newest ``keep_last`` checkpoints plus the best one."""
    from safetensors.torch import save_file

    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    _clean_tmp(root)
    name = _step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        tensors, aliases = model_tensors(model, model_state)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT})
        opt_meta = None
        if optimizer is not None:
            opt_tensors, opt_meta = _optimizer_tensors(optimizer, optimizer_state)
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"), metadata={"format": FORMAT})
        rng_meta: dict = {}
        if save_rng:
            rng_tensors, rng_meta = rng_state()
            save_file(rng_tensors, str(tmp / "rng.safetensors"), metadata={"format": FORMAT})
        doc = {"format": FORMAT, "step": int(step), "aliases": aliases, "optimizer": opt_meta, "rng": rng_meta,
               "val_loss": val_loss, **(state or {})}
        (tmp / "state.json").write_text(json.dumps(doc, default=_json_default), encoding="utf-8")
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_dir(tmp)
        final = root / name
        if final.exists():  # the same step saved again (e.g. a stop right after a periodic save)
            trash = Path(tempfile.mkdtemp(prefix=f".tmp-old-{name}-", dir=root))
            os.replace(final, trash / name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / "latest", name + "\n")
    if best:
        atomic_write_text(root / "best", name + "\n")
    _prune(root, keep_last)
    return final


def _clean_tmp(root: Path) -> None:
    for p in root.glob(".tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except OSError:
                pass


def _pointer(root: Path, which: str) -> str | None:
    try:
        text = (root / which).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text if text.startswith(STEP_PREFIX) and "/" not in text and "\\" not in text else None


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders (state.json present), oldest first."""
    root = checkpoints_dir(run_dir)
    found = [p for p in root.glob(f"{STEP_PREFIX}*") if p.is_dir() and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def _prune(root: Path, keep_last: int) -> None:
    keep = {_pointer(root, "latest"), _pointer(root, "best")}
    done = list_checkpoints(root.parent)
    for p in done[: max(0, len(done) - max(1, keep_last))]:
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def latest_path(run_dir: str | os.PathLike, which: str = "latest") -> Path | None:
    """The checkpoint folder that ``latest`` (or ``best``) points at; falls back to the newest complete
    folder if the pointer is missing."""
    root = checkpoints_dir(run_dir)
    name = _pointer(root, which)
    if name and (root / name / "state.json").is_file():
        return root / name
    done = list_checkpoints(run_dir)
    return done[-1] if done else None


def load(path: str | os.PathLike, *, which: str = "latest", optimizer: bool = True) -> Checkpoint:
    """Load a checkpoint folder, or a run directory's ``latest``/``best`` checkpoint, onto the CPU.
    Only safetensors and JSON are read (no pickle). A missing or damaged checkpoint is a ValidationError."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "state.json").is_file():
        found = latest_path(path, which)
        if found is None:
            raise ValidationError(f"no checkpoint found in {path}")
        path = found
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        if state.get("format") != FORMAT:
            raise ValidationError(f"{path} is not a Preflight checkpoint (format {state.get('format')!r})")
        model = load_file(str(path / "model.safetensors"))
        opt = None
        if optimizer and state.get("optimizer") is not None and (path / "optimizer.safetensors").is_file():
            opt = _optimizer_state_dict(load_file(str(path / "optimizer.safetensors")), state["optimizer"])
        rng = load_file(str(path / "rng.safetensors")) if (path / "rng.safetensors").is_file() else {}
    except ValidationError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # safetensors raises SafetensorError (an Exception)
        raise ValidationError(f"checkpoint {path} cannot be read: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - safetensors_rust.SafetensorError
        raise ValidationError(f"checkpoint {path} cannot be read: {exc}") from None
    return Checkpoint(path=path, step=int(state["step"]), model=model, aliases=dict(state.get("aliases") or {}),
                      optimizer=opt, rng_tensors=rng, state=state)


def _json_default(value: object):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
