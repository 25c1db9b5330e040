"""Does an exported step graph stay inside what TensorRT's ONNX parser supports? (Checked without TensorRT.)

Source of the support table: onnx-tensorrt's ``docs/operators.md`` (github.com/onnx/onnx-tensorrt). Its
TensorRT 10.0 revision states the range "opset 9 to opset 20" and the data types DOUBLE, FLOAT32, FLOAT16,
BFLOAT16, INT32, INT64, FP8, INT8, INT4, UINT8 and BOOL; the operator names below are the rows marked
supported ("Y") in that file that this package's graphs can contain (later 10.x releases only add operators,
per the same repository's changelog). The TensorRT versions of current JetPack: 6.1/6.2 (Orin) ship
TensorRT 10.3, 7.0 (Thor) ships TensorRT 10.13; both are 10.x, so one table serves both.

What this does not prove: that TensorRT builds the graph (restrictions such as constant ``axes`` inputs or
strongly-typed casts are checked by the parser only). ``verify_engine``/``export_engine`` on the target do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TRT10_OPSET_RANGE = (9, 20)
TRT10_DTYPES = frozenset(
    {
        "DOUBLE",
        "FLOAT",
        "FLOAT16",
        "BFLOAT16",
        "INT32",
        "INT64",
        "FLOAT8E4M3FN",
        "INT8",
        "INT4",
        "UINT8",
        "BOOL",
    }
)
TRT10_OPS = frozenset(
    {
        "Abs",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Cast",
        "Ceil",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "Cos",
        "CumSum",
        "DequantizeLinear",
        "Div",
        "Einsum",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "Greater",
        "GreaterOrEqual",
        "Identity",
        "If",
        "Less",
        "LessOrEqual",
        "Log",
        "MatMul",
        "Max",
        "Mean",
        "Min",
        "Mul",
        "Neg",
        "Not",
        "Or",
        "Pad",
        "Pow",
        "QuantizeLinear",
        "Range",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceSum",
        "Relu",
        "Reshape",
        "Resize",
        "ScatterND",
        "Shape",
        "Sigmoid",
        "Sign",
        "Sin",
        "Slice",
        "Softmax",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tanh",
        "Tile",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)
JETPACK_TENSORRT = {"JetPack 6.1/6.2 (AGX Orin)": "10.3", "JetPack 7.0 (AGX Thor)": "10.13"}


@dataclass
class GraphInventory:
    """Every operator, opset and tensor data type in an ONNX graph."""

    ops: set[str] = field(default_factory=set)
    opsets: dict[str, int] = field(default_factory=dict)
    dtypes: set[str] = field(default_factory=set)


def graph_inventory(onnx_path: str | Path) -> GraphInventory:
    """Read the graph (not its external weights) and list what it uses."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    model = onnx.shape_inference.infer_shapes(model)
    inv = GraphInventory(opsets={o.domain or "ai.onnx": o.version for o in model.opset_import})
    name = onnx.TensorProto.DataType.Name
    g = model.graph
    for n in g.node:
        inv.ops.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
        for a in n.attribute:
            if a.name == "to":  # Cast target
                inv.dtypes.add(name(a.i))
            if a.type == onnx.AttributeProto.TENSOR:
                inv.dtypes.add(name(a.t.data_type))
    for t in g.initializer:
        inv.dtypes.add(name(t.data_type))
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.HasField("tensor_type"):
            inv.dtypes.add(name(v.type.tensor_type.elem_type))
    inv.dtypes.discard("UNDEFINED")
    return inv


def trt10_problems(inv: GraphInventory) -> list[str]:
    """What in ``inv`` falls outside the TensorRT 10.x ONNX parser table (empty: all supported)."""
    problems = [
        f"operator {op} not in TensorRT 10.x's ONNX operator list" for op in sorted(inv.ops - TRT10_OPS)
    ]
    lo, hi = TRT10_OPSET_RANGE
    default = inv.opsets.get("ai.onnx")
    if default is None or not lo <= default <= hi:
        problems.append(f"default-domain opset {default} outside TensorRT 10.x's {lo}-{hi}")
    problems += [f"data type {d} not supported by TensorRT 10.x" for d in sorted(inv.dtypes - TRT10_DTYPES)]
    return problems
