"""C and C++ hosts (issue 24): the card's C snippet compiles as C99 and as C++17, and
onnxruntime's C API, driven exactly as the snippet drives it, reproduces the golden
vectors of every shipped model, through the library the onnxruntime wheel ships."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import ort_capi
import pytest

from conftest import REPO
from sod_train.check.golden import golden_image, golden_input, load_golden, run_golden_with
from sod_train.release import card

REGISTRY = json.loads((REPO / "model/tiny/registry.json").read_text())
SHIPPED = [REPO / entry["onnx"] for entry in REGISTRY["models"]]
LIBRARY = ort_capi.find_library()
NO_LIBRARY = "no libonnxruntime.so* in the onnxruntime wheel: pip install onnxruntime"
COMPILERS = {"c99": ("gcc", "-std=c99"), "c++17": ("g++", "-std=c++17")}
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
# A host around the snippet: reads an 8-bit RGB picture, writes the float map.
HOST_MAIN = r"""
int main(int argc, char **argv) {
    if (argc != 6) return 2;
    int64_t h = atoll(argv[3]), w = atoll(argv[4]);
    size_t n = (size_t)(h * w);
    uint8_t *rgb = (uint8_t *)malloc(3 * n);
    float *map = (float *)malloc(n * sizeof(float));
    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[5], "wb");
    if (!rgb || !map || !in || !out || fread(rgb, 1, 3 * n, in) != 3 * n) return 3;
    if (saliency(argv[1], rgb, h, w, 1, map) != 0) return 1;
    if (fwrite(map, sizeof(float), n, out) != n) return 4;
    fclose(in);
    fclose(out);
    free(rgb);
    free(map);
    return 0;
}
"""


def snippet(model: str = "model.onnx") -> str:
    metrics = {"onnx": {"file": model}}
    return card.c_snippet(metrics, None)


def compiler(standard: str) -> str:
    name = COMPILERS[standard][0]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"no {name} on PATH: apt-get install {name.replace('gcc', 'gcc g++')}")
    return path


def build(tmp_path, standard: str, source: str, *flags: str) -> subprocess.CompletedProcess:
    suffix = ".c" if standard == "c99" else ".cpp"
    (tmp_path / "onnxruntime_c_api.h").write_text(ort_capi.minimal_header())
    src = tmp_path / f"host{suffix}"
    src.write_text(source)
    cmd = [compiler(standard), COMPILERS[standard][1], *WARNINGS, "-I", str(tmp_path), str(src)]
    return subprocess.run([*cmd, *flags], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_snippet_checks_every_status_and_sets_threads_and_spinning():
    c = snippet()
    calls = [line for line in c.splitlines() if "ort->" in line and "Release" not in line]
    status_calls = [line for line in calls if "GetErrorMessage" not in line]
    assert status_calls and all("failed(ort, ort->" in line for line in status_calls), calls
    assert "if (ort == NULL" in c  # GetApi returns NULL for an API version it lacks
    assert "(float *)malloc(" in c  # C++ needs the cast
    assert "ort->SetIntraOpNumThreads(options, threads)" in c
    assert '"session.intra_op.allow_spinning", "0"' in c
    created = ["Value(out)", "Value(in)", "MemoryInfo(memory)", "Session(session)"]
    for thing in [*created, "SessionOptions(options)", "Env(env)"]:
        assert f"ort->Release{thing};" in c, thing
    assert c.index("done:") < c.index("ort->ReleaseValue(out)") and "free(input);" in c


@pytest.mark.parametrize("standard", sorted(COMPILERS))
def test_snippet_compiles(tmp_path, standard):
    result = build(tmp_path, standard, snippet() + "\n", "-fsyntax-only")
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(LIBRARY is None, reason=NO_LIBRARY)
def test_slots_and_version_of_the_wheel_library():
    """The OrtApi slot table (counted from onnxruntime_c_api.h) fits the installed library."""
    version = ort_capi.api_version(ort.__version__)
    assert version >= ort_capi.HEADER_API_VERSION, "slots counted from a newer header"
    api = ort_capi.Api(LIBRARY, version)
    assert api.version_string == ort.__version__
    ort_capi.check_slots(api)


@pytest.mark.skipif(LIBRARY is None, reason=NO_LIBRARY)
@pytest.mark.parametrize("model", SHIPPED, ids=[m.stem for m in SHIPPED])
def test_c_api_reproduces_the_golden_vectors(model):
    """The snippet's calls, through ctypes: every golden case within its tolerance, and
    bit-identical to the Python binding with the same thread count."""
    api = ort_capi.Api(LIBRARY, ort_capi.api_version(ort.__version__))
    golden = load_golden(model.with_name(f"{model.stem}.golden.json"))

    def runner(x: np.ndarray) -> np.ndarray:
        return ort_capi.saliency(api, model, x)[None, None]

    assert run_golden_with(runner, golden) == []
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for case in golden["cases"]:
        x = golden_input(case["height"], case["width"])
        (python,) = session.run(None, {"input": x})
        assert np.array_equal(runner(x), python), case["name"]


@pytest.mark.skipif(LIBRARY is None, reason=NO_LIBRARY)
@pytest.mark.parametrize("standard", sorted(COMPILERS))
def test_compiled_snippet_runs_against_the_wheel_library(tmp_path, standard):
    """The snippet itself, compiled and linked against the wheel's library, preprocesses the
    golden pictures and reproduces every shipped model's golden vectors."""
    # The wheel has libonnxruntime.so.1.X.Y only; the program asks for its SONAME (.so.1).
    libdir = tmp_path / "lib"
    libdir.mkdir()
    soname = LIBRARY.name.split(".so")[0] + ".so." + LIBRARY.name.split(".so.")[1].split(".")[0]
    (libdir / soname).symlink_to(LIBRARY)
    link = [f"-L{LIBRARY.parent}", f"-l:{LIBRARY.name}", f"-Wl,-rpath,{libdir}"]
    exe = tmp_path / "host"
    result = build(tmp_path, standard, snippet() + HOST_MAIN, "-o", str(exe), *link)
    assert result.returncode == 0, result.stderr
    for model in SHIPPED:

        def runner(x: np.ndarray, model=model) -> np.ndarray:
            h, w = x.shape[2:]
            (tmp_path / "rgb.bin").write_bytes(golden_image(h, w).tobytes())
            args = [str(exe), str(model), "rgb.bin", str(h), str(w), "map.bin"]
            run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stderr
            plane = np.fromfile(tmp_path / "map.bin", dtype=np.float32)
            return plane.reshape(1, 1, h, w)

        golden = load_golden(model.with_name(f"{model.stem}.golden.json"))
        assert run_golden_with(runner, golden) == [], model.name
    bad = subprocess.run(
        [str(exe), str(tmp_path / "missing.onnx"), "rgb.bin", "64", "64", "map.bin"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("onnxruntime: "), bad.stderr


@pytest.mark.skipif(LIBRARY is None, reason=NO_LIBRARY)
def test_the_documented_cmake_project_builds_and_runs(tmp_path):
    """docs/host.md's CMakeLists.txt, on a release-archive layout (include/ + lib/) made of
    the declarations header and the wheel's library, builds the card's code and runs it."""
    import re

    cmake = shutil.which("cmake")
    if cmake is None or shutil.which("gcc") is None:
        pytest.skip("needs cmake and gcc on PATH: apt-get install cmake gcc")
    doc = (REPO / "docs/host.md").read_text()
    (tmp_path / "CMakeLists.txt").write_text(re.search(r"```cmake\n(.*?)```", doc, re.S)[1])
    (tmp_path / "host.c").write_text(snippet() + HOST_MAIN)
    root = tmp_path / "onnxruntime-linux-x64"
    (root / "include").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "include/onnxruntime_c_api.h").write_text(ort_capi.minimal_header())
    for name in ("libonnxruntime.so", "libonnxruntime.so.1"):
        (root / "lib" / name).symlink_to(LIBRARY)
    for step in (
        [cmake, "-S", ".", "-B", "build", f"-DONNXRUNTIME_ROOT={root}"],
        [cmake, "--build", "build"],
    ):
        done = subprocess.run(step, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    model = SHIPPED[-1]
    h, w = 37, 53
    (tmp_path / "rgb.bin").write_bytes(golden_image(h, w).tobytes())
    exe = tmp_path / "build/saliency_host"
    run = subprocess.run(
        [str(exe), str(model), "rgb.bin", str(h), str(w), "map.bin"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (case,) = [c for c in load_golden(model.with_name(f"{model.stem}.golden.json"))["cases"]
               if (c["height"], c["width"]) == (h, w)]  # fmt: skip
    plane = np.fromfile(tmp_path / "map.bin", dtype=np.float32).reshape(h, w)
    want = np.asarray(case["output"], dtype=np.float32).reshape(h, w)
    assert np.abs(plane - want).max() <= 1e-4
