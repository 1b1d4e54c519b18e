"""The native TensorRT build path against a RECORDING FAKE of the tensorrt module.

This does not show that TensorRT works (nothing here has TensorRT or a GPU): it checks the order of the
TensorRT 10 API calls build_engine makes (strongly typed network, ONNX parse, one optimization profile,
timing cache in and out, serialized engine) and that the engine cache is keyed so a change of precision,
TensorRT version or GPU rebuilds instead of reusing a stale engine. The real test is
tests/infer/test_backends.py::test_gpu_backends_match_and_cache, which runs wherever `import tensorrt` works.
"""

from __future__ import annotations

import types

import pytest

from engine.infer import tensorrt_backend as tb


class RecordingFakeTensorRT(types.SimpleNamespace):
    """Stands in for `import tensorrt`; records each call. NOT TensorRT."""

    def __init__(self, version="10.9.0"):
        calls = []
        rec = lambda name: (lambda *a, **k: calls.append((name, a, k)))  # noqa: E731

        class Logger:
            WARNING = 2

            def __init__(self, level):
                calls.append(("Logger", (level,), {}))

        class Cache:
            def serialize(self):
                return b"timing"

        class Config:
            set_memory_pool_limit = staticmethod(rec("config.set_memory_pool_limit"))
            clear_flag = staticmethod(rec("config.clear_flag"))
            add_optimization_profile = staticmethod(rec("config.add_optimization_profile"))

            def create_timing_cache(self, data):
                calls.append(("config.create_timing_cache", (data,), {}))
                return Cache()

            def set_timing_cache(self, cache, ignore_mismatch):
                calls.append(("config.set_timing_cache", (), {"ignore_mismatch": ignore_mismatch}))

            def get_timing_cache(self):
                return Cache()

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                calls.append(("profile.set_shape", (name, lo, opt, hi), {}))

        class Builder:
            def __init__(self, logger):
                calls.append(("Builder", (), {}))

            def create_network(self, flags):
                calls.append(("builder.create_network", (flags,), {}))
                return object()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                calls.append(("builder.build_serialized_network", (), {}))
                return b"engine-bytes"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                calls.append(("parser.parse_from_file", (path,), {}))
                return True

        super().__init__(
            __version__=version, calls=calls, Logger=Logger, Builder=Builder, OnnxParser=OnnxParser,
            NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=5),
            MemoryPoolType=types.SimpleNamespace(WORKSPACE=0), BuilderFlag=types.SimpleNamespace(TF32=7))


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(f"pretend onnx {tmp_path}".encode())  # unique: the engine cache is shared
    return path


def _names(fake):
    return [c[0] for c in fake.calls]


def test_build_call_sequence_recorded(onnx_file):
    fake = RecordingFakeTensorRT()
    shapes = {"input_ids": ((1, 1), (1, 16), (4, 32))}
    data = tb.build_engine(fake, str(onnx_file), "fp32", shapes, "Fake GPU")
    assert data == b"engine-bytes"
    names = _names(fake)
    order = ["Builder", "builder.create_network", "parser.parse_from_file", "config.set_memory_pool_limit",
             "config.clear_flag", "profile.set_shape", "config.add_optimization_profile",
             "config.create_timing_cache", "config.set_timing_cache", "builder.build_serialized_network"]
    assert [n for n in names if n in order] == order
    assert ("builder.create_network", (1 << 5,), {}) in fake.calls  # STRONGLY_TYPED
    assert any(p.suffix == ".cache" for p in tb.cache_dir().iterdir())  # the timing cache was saved


def test_engine_cache_reused_only_for_the_same_key(onnx_file):
    shapes = {"input_ids": ((1, 1), (1, 16), (4, 32))}
    tb.build_engine(RecordingFakeTensorRT(), str(onnx_file), "fp16", shapes, "Fake GPU")
    again = RecordingFakeTensorRT()
    tb.build_engine(again, str(onnx_file), "fp16", shapes, "Fake GPU")
    assert "builder.build_serialized_network" not in _names(again)  # served from the engine cache
    for fake, dtype, gpu in ((RecordingFakeTensorRT("11.0.0"), "fp16", "Fake GPU"),
                             (RecordingFakeTensorRT(), "fp32", "Fake GPU"),
                             (RecordingFakeTensorRT(), "fp16", "Other GPU")):
        tb.build_engine(fake, str(onnx_file), dtype, shapes, gpu)
        assert "builder.build_serialized_network" in _names(fake), (fake.__version__, dtype, gpu)
    onnx_file.write_bytes(b"changed model")
    changed = RecordingFakeTensorRT()
    tb.build_engine(changed, str(onnx_file), "fp16", shapes, "Fake GPU")
    assert "builder.build_serialized_network" in _names(changed)
