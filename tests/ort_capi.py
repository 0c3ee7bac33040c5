"""onnxruntime's C API without its headers: the OrtApi slots the card's C snippet uses.

The onnxruntime wheel ships the C library (``onnxruntime/capi/libonnxruntime.so.*``) but
not ``onnxruntime_c_api.h``. ``OrtGetApiBase()->GetApi(version)`` returns ``struct
OrtApi``, a table of function pointers. Its order is ABI: onnxruntime only appends to
it, so a function's slot never moves between releases.

How the slots were computed: by counting the members of ``struct OrtApi`` in order, one
slot per function pointer (``ORT_API2_STATUS(...)``, ``ORT_CLASS_RELEASE(...)`` and the
plain ``X (ORT_API_CALL* Name)(...)`` members), in
``include/onnxruntime/core/session/onnxruntime_c_api.h`` of microsoft/onnxruntime at
commit 0017800f6539412b364502d8b59c11463a6411e6 (ORT_API_VERSION 13). Every slot below is
older than version 13, so the table holds for any library that serves API version >= 13.
The guards: ``GetApi`` must not return NULL for the installed version's API level,
``GetVersionString`` must name the installed wheel, and :func:`check_slots` calls
functions whose answers are known (an error status with its code and message, the
provider list) so that a wrong slot fails loudly instead of calling the wrong function.

:func:`minimal_header` writes declarations with that exact layout (unused slots as
padding), so the card's snippet compiles against them and can even run against the
wheel's library.
"""

from __future__ import annotations

import ctypes as C
from pathlib import Path

HEADER_API_VERSION = 13  # the header the slots were counted from
SLOTS: dict[str, int] = {
    "GetErrorCode": 1,
    "GetErrorMessage": 2,
    "CreateEnv": 3,
    "CreateSession": 7,
    "Run": 9,
    "CreateSessionOptions": 10,
    "SetIntraOpNumThreads": 24,
    "CreateTensorWithDataAsOrtValue": 49,
    "GetTensorMutableData": 51,
    "CreateCpuMemoryInfo": 69,
    "ReleaseEnv": 92,
    "ReleaseStatus": 93,
    "ReleaseMemoryInfo": 94,
    "ReleaseSession": 95,
    "ReleaseValue": 96,
    "ReleaseSessionOptions": 100,
    "GetAvailableProviders": 125,
    "ReleaseAvailableProviders": 126,
    "AddSessionConfigEntry": 130,
}
ORT_LOGGING_LEVEL_WARNING = 2
ORT_NO_SUCHFILE = 3
OrtArenaAllocator, OrtMemTypeDefault = 1, 0
ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1

P = C.c_void_p
PP = C.POINTER(C.c_void_p)
STATUS = C.c_void_p  # OrtStatus*, NULL on success
# ctypes prototypes, in onnxruntime_c_api.h's parameter order.
PROTOTYPES = {
    "GetErrorCode": C.CFUNCTYPE(C.c_int, P),
    "GetErrorMessage": C.CFUNCTYPE(C.c_char_p, P),
    "CreateEnv": C.CFUNCTYPE(STATUS, C.c_int, C.c_char_p, PP),
    "CreateSession": C.CFUNCTYPE(STATUS, P, C.c_char_p, P, PP),
    "Run": C.CFUNCTYPE(
        STATUS, P, P, C.POINTER(C.c_char_p), PP, C.c_size_t, C.POINTER(C.c_char_p), C.c_size_t, PP
    ),
    "CreateSessionOptions": C.CFUNCTYPE(STATUS, PP),
    "SetIntraOpNumThreads": C.CFUNCTYPE(STATUS, P, C.c_int),
    "CreateTensorWithDataAsOrtValue": C.CFUNCTYPE(
        STATUS, P, P, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t, C.c_int, PP
    ),
    "GetTensorMutableData": C.CFUNCTYPE(STATUS, P, PP),
    "CreateCpuMemoryInfo": C.CFUNCTYPE(STATUS, C.c_int, C.c_int, PP),
    "GetAvailableProviders": C.CFUNCTYPE(
        STATUS, C.POINTER(C.POINTER(C.c_char_p)), C.POINTER(C.c_int)
    ),
    "ReleaseAvailableProviders": C.CFUNCTYPE(STATUS, C.POINTER(C.c_char_p), C.c_int),
    "AddSessionConfigEntry": C.CFUNCTYPE(STATUS, P, C.c_char_p, C.c_char_p),
    **{
        name: C.CFUNCTYPE(None, P)
        for name in SLOTS
        if name.startswith("Release") and name != "ReleaseAvailableProviders"
    },
}


class OrtApiBase(C.Structure):
    _fields_ = [
        ("GetApi", C.CFUNCTYPE(C.c_void_p, C.c_uint32)),
        ("GetVersionString", C.CFUNCTYPE(C.c_char_p)),
    ]


def find_library() -> Path | None:
    """The C library inside the installed onnxruntime wheel (None if there is none)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    found = sorted(Path(onnxruntime.__file__).parent.glob("capi/libonnxruntime.so*"))
    return found[0] if found else None


def api_version(version: str) -> int:
    """The C API level of a release: its minor number (1.32.0 serves ORT_API_VERSION 32)."""
    return int(version.split(".")[1])


class OrtError(RuntimeError):
    """A non-NULL OrtStatus: its code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Api:
    """The OrtApi table of a loaded library, called by name through :data:`SLOTS`."""

    def __init__(self, library: Path, version: int) -> None:
        self.lib = C.CDLL(str(library))
        self.lib.OrtGetApiBase.restype = C.POINTER(OrtApiBase)
        base = self.lib.OrtGetApiBase().contents
        self.version_string = base.GetVersionString().decode()
        table = base.GetApi(version)
        if not table:
            raise OrtError(-1, f"GetApi({version}) returned NULL")
        slots = (C.c_void_p * (max(SLOTS.values()) + 1)).from_address(table)
        self.fn = {name: PROTOTYPES[name](slots[i]) for name, i in SLOTS.items()}

    def check(self, status: int | None) -> None:
        """The snippet's ``failed()``: raise with the message, release the status."""
        if status:
            code = self.fn["GetErrorCode"](status)
            message = self.fn["GetErrorMessage"](status).decode()
            self.fn["ReleaseStatus"](status)
            raise OrtError(code, message)


def check_slots(api: Api) -> None:
    """Calls whose answers are known, spread over the table: a wrong slot fails here."""
    env = C.c_void_p()
    api.check(api.fn["CreateEnv"](ORT_LOGGING_LEVEL_WARNING, b"slots", C.byref(env)))
    options = C.c_void_p()
    try:
        api.check(api.fn["CreateSessionOptions"](C.byref(options)))
        session = C.c_void_p()
        missing = b"/nonexistent/sod-train-slot-check.onnx"
        status = api.fn["CreateSession"](env, missing, options, C.byref(session))
        try:
            api.check(status)
        except OrtError as exc:
            assert exc.code == ORT_NO_SUCHFILE and "sod-train-slot-check" in str(exc), exc
        else:
            raise AssertionError("CreateSession on a missing file did not fail")
        names, count = C.POINTER(C.c_char_p)(), C.c_int()
        api.check(api.fn["GetAvailableProviders"](C.byref(names), C.byref(count)))
        providers = [names[i].decode() for i in range(count.value)]
        api.check(api.fn["ReleaseAvailableProviders"](names, count))
        assert "CPUExecutionProvider" in providers, providers
    finally:
        api.fn["ReleaseSessionOptions"](options)
        api.fn["ReleaseEnv"](env)


def saliency(api: Api, model: Path, x, threads: int = 1):
    """The card's C snippet, call for call (the input already normalised, NCHW float32):
    env, options with threads and no spinning, session, CPU memory info, tensor, Run,
    output data, then every Release. Returns the float32 map [H, W]."""
    import numpy as np

    x = np.ascontiguousarray(x, dtype=np.float32)
    _, _, h, w = x.shape
    fn, check = api.fn, api.check
    env, options, session, memory = C.c_void_p(), C.c_void_p(), C.c_void_p(), C.c_void_p()
    value_in, value_out, result = C.c_void_p(), C.c_void_p(), C.c_void_p()
    shape = (C.c_int64 * 4)(1, 3, h, w)
    in_names = (C.c_char_p * 1)(b"input")
    out_names = (C.c_char_p * 1)(b"saliency_map")
    try:
        check(fn["CreateEnv"](ORT_LOGGING_LEVEL_WARNING, b"host", C.byref(env)))
        check(fn["CreateSessionOptions"](C.byref(options)))
        check(fn["SetIntraOpNumThreads"](options, threads))
        check(fn["AddSessionConfigEntry"](options, b"session.intra_op.allow_spinning", b"0"))
        check(fn["CreateSession"](env, str(model).encode(), options, C.byref(session)))
        check(fn["CreateCpuMemoryInfo"](OrtArenaAllocator, OrtMemTypeDefault, C.byref(memory)))
        check(
            fn["CreateTensorWithDataAsOrtValue"](
                memory, x.ctypes.data, x.nbytes, shape, 4,
                ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, C.byref(value_in),
            )
        )  # fmt: skip
        inputs = (C.c_void_p * 1)(value_in.value)
        check(fn["Run"](session, None, in_names, inputs, 1, out_names, 1, C.byref(value_out)))
        check(fn["GetTensorMutableData"](value_out, C.byref(result)))
        out = np.ctypeslib.as_array(C.cast(result, C.POINTER(C.c_float)), shape=(h * w,))
        return out.reshape(h, w).copy()
    finally:  # the Release functions accept NULL, as in the snippet
        fn["ReleaseValue"](value_out)
        fn["ReleaseValue"](value_in)
        fn["ReleaseMemoryInfo"](memory)
        fn["ReleaseSession"](session)
        fn["ReleaseSessionOptions"](options)
        fn["ReleaseEnv"](env)


# --------------------------------------------------------------- a header with the layout

_TYPES = """
#include <stddef.h>
#include <stdint.h>
#define ORT_API_VERSION {version}
typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef enum OrtLoggingLevel {{ ORT_LOGGING_LEVEL_WARNING = 2 }} OrtLoggingLevel;
typedef enum OrtErrorCode {{ ORT_OK = 0 }} OrtErrorCode;
typedef enum OrtAllocatorType {{ OrtDeviceAllocator = 0, OrtArenaAllocator = 1 }} OrtAllocatorType;
typedef enum OrtMemType {{ OrtMemTypeDefault = 0 }} OrtMemType;
typedef enum ONNXTensorElementDataType {{
    ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1
}} ONNXTensorElementDataType;
#ifdef __cplusplus
extern "C" {{
#endif
"""
# Declarations with onnxruntime_c_api.h's signatures, for the slots the snippet uses.
_MEMBERS = {
    "GetErrorCode": "OrtErrorCode (*GetErrorCode)(const OrtStatus *status)",
    "GetErrorMessage": "const char *(*GetErrorMessage)(const OrtStatus *status)",
    "CreateEnv": "OrtStatus *(*CreateEnv)(OrtLoggingLevel level, const char *logid, OrtEnv **out)",
    "CreateSession": "OrtStatus *(*CreateSession)(const OrtEnv *env, const char *model_path, "
    "const OrtSessionOptions *options, OrtSession **out)",
    "Run": "OrtStatus *(*Run)(OrtSession *session, const OrtRunOptions *run_options, "
    "const char *const *input_names, const OrtValue *const *inputs, size_t input_len, "
    "const char *const *output_names, size_t output_names_len, OrtValue **outputs)",
    "CreateSessionOptions": "OrtStatus *(*CreateSessionOptions)(OrtSessionOptions **options)",
    "SetIntraOpNumThreads": "OrtStatus *(*SetIntraOpNumThreads)(OrtSessionOptions *options, "
    "int intra_op_num_threads)",
    "CreateTensorWithDataAsOrtValue": "OrtStatus *(*CreateTensorWithDataAsOrtValue)("
    "const OrtMemoryInfo *info, void *p_data, size_t p_data_len, const int64_t *shape, "
    "size_t shape_len, ONNXTensorElementDataType type, OrtValue **out)",
    "GetTensorMutableData": "OrtStatus *(*GetTensorMutableData)(OrtValue *value, void **out)",
    "CreateCpuMemoryInfo": "OrtStatus *(*CreateCpuMemoryInfo)(OrtAllocatorType type, "
    "OrtMemType mem_type, OrtMemoryInfo **out)",
    "ReleaseEnv": "void (*ReleaseEnv)(OrtEnv *input)",
    "ReleaseStatus": "void (*ReleaseStatus)(OrtStatus *input)",
    "ReleaseMemoryInfo": "void (*ReleaseMemoryInfo)(OrtMemoryInfo *input)",
    "ReleaseSession": "void (*ReleaseSession)(OrtSession *input)",
    "ReleaseValue": "void (*ReleaseValue)(OrtValue *input)",
    "ReleaseSessionOptions": "void (*ReleaseSessionOptions)(OrtSessionOptions *input)",
    "GetAvailableProviders": "OrtStatus *(*GetAvailableProviders)(char ***out_ptr, "
    "int *provider_length)",
    "ReleaseAvailableProviders": "OrtStatus *(*ReleaseAvailableProviders)(char **ptr, "
    "int providers_length)",
    "AddSessionConfigEntry": "OrtStatus *(*AddSessionConfigEntry)(OrtSessionOptions *options, "
    "const char *config_key, const char *config_value)",
}


def minimal_header(version: int = HEADER_API_VERSION) -> str:
    """``onnxruntime_c_api.h`` as far as the snippet needs it, with the real OrtApi layout
    (unused slots are ``void *`` padding, the same size as a function pointer)."""
    lines = [_TYPES.format(version=version), "typedef struct OrtApi {"]
    slot = 0
    for name, index in sorted(SLOTS.items(), key=lambda item: item[1]):
        if index > slot:
            lines.append(f"    void *unused_{slot}_{index - 1}[{index - slot}];")
        lines.append(f"    {_MEMBERS[name]};")
        slot = index + 1
    lines += [
        "} OrtApi;",
        "typedef struct OrtApiBase {",
        "    const OrtApi *(*GetApi)(uint32_t version);",
        "    const char *(*GetVersionString)(void);",
        "} OrtApiBase;",
        "const OrtApiBase *OrtGetApiBase(void);",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
    ]
    return "\n".join(lines)
