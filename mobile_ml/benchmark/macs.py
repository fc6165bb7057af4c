"""Work per inference: multiply-accumulates counted from the .tflite graph (batch 1).

Counted: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, BATCH_MATMUL, the ops that dominate a vision or
tabular model's arithmetic. Element-wise ops, pooling and activations are not counted (as in the usual "MACs"
figures published for MobileNets), so GOP/s = 2 × MACs / latency is achieved arithmetic in those layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class Work:
    macs: int
    by_op: dict[str, int]  # op name → MACs
    counted_ops: int  # operators whose work is in ``macs``


def count_macs(data: bytes) -> Work:
    from ai_edge_litert import schema_py_generated as fb

    from mobile_ml.export.tflite_file import op_name

    model = fb.Model.GetRootAs(data, 0)
    sg = model.Subgraphs(0)

    def shape(i: int) -> list[int]:
        if i < 0:
            return []
        return [max(1, int(d)) for d in sg.Tensors(i).ShapeAsNumpy()] if sg.Tensors(i).ShapeLength() else []

    by_op: dict[str, int] = {}
    counted = 0
    for o in range(sg.OperatorsLength()):
        op = sg.Operators(o)
        name = op_name(model.OperatorCodes(op.OpcodeIndex()))
        ins = [op.Inputs(i) for i in range(op.InputsLength())]
        out = shape(op.Outputs(0)) if op.OutputsLength() else []
        macs = 0
        if name == "CONV_2D" and len(ins) >= 2:
            cout, kh, kw, cin = shape(ins[1])
            macs = prod(out) * kh * kw * cin  # prod(out) already includes Cout
        elif name == "DEPTHWISE_CONV_2D" and len(ins) >= 2:
            _, kh, kw, _ = shape(ins[1])
            macs = prod(out) * kh * kw
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            w = shape(ins[1])
            macs = prod(out) * (w[-1] if w else 0)
        elif name == "TRANSPOSE_CONV" and len(ins) >= 3:
            cout, kh, kw, cin = shape(ins[1])
            macs = prod(shape(ins[2])) * kh * kw * cout
        elif name == "BATCH_MATMUL" and len(ins) >= 2:
            a = shape(ins[0])
            macs = prod(out) * (a[-1] if a else 0)
        if macs:
            counted += 1
            by_op[name] = by_op.get(name, 0) + macs
    return Work(sum(by_op.values()), by_op, counted)
