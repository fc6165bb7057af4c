"""Rebuild a Keras 3 model in ``tf_keras`` so tfmot (QAT, pruning) can fine-tune it.

tfmot only accepts ``tf_keras`` Sequential and Functional models (FACTS.md). A Keras 3 model is rebuilt from its
config, layer by layer: each layer class must exist in ``tf_keras.layers`` under the same name, its config is
translated (dtype policies, the serialized form of initializers, ``batch_shape``), the graph is wired from the
Keras 3 functional config, and the weights are copied. The caller proves the result matches the original.
"""

from __future__ import annotations

import inspect
from typing import Any

from mobile_ml.errors import UserError


class FinetuneUnsupported(UserError):
    """The model cannot be fine-tuned with tfmot (no ``tf_keras`` equivalent); QAT and pruning variants are skipped."""


def rebuild(model: Any, input_names: list[str], output_names: list[str]) -> Any:
    """A ``tf_keras`` model with the architecture and weights of the Keras 3 ``model``.

    Inputs are named ``input_names`` and output layers ``output_names`` (when each output is its own layer), so a
    TFLite file converted from the rebuilt model has the same signature names as one converted from the original.
    """
    from mobile_ml import _tf

    tk = _tf.keras()
    config = model.get_config()
    if type(model).__name__ == "Sequential":
        inputs = [tk.Input(tuple(model.inputs[0].shape[1:]), dtype=model.inputs[0].dtype, name=input_names[0])]
        x = inputs[0]
        built = []
        for layer in model.layers:
            new = _tf_keras_layer(tk, layer, _rename(layer, model, output_names))
            x = new(x)
            built.append((layer, new))
        outputs = [x]
    else:
        inputs, outputs, built = _wire_functional(tk, model, config, input_names, output_names)
    rebuilt = tk.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=config.get("name", "model"))
    for original, new in built:
        _copy_weights(original, new)
    return rebuilt


def _rename(layer: Any, model: Any, output_names: list[str]) -> str:
    """The name the rebuilt layer gets: the output name when the layer produces one output, else its own name."""
    outs = [getattr(t, "_keras_history", None) for t in model.outputs]
    owners = [h[0] if h else None for h in outs]
    if owners.count(layer) == 1 and len(layer._inbound_nodes) == 1:
        return output_names[owners.index(layer)]
    return layer.name


def _wire_functional(
    tk: Any, model: Any, config: dict, input_names: list[str], output_names: list[str]
) -> tuple[list, list, list]:
    layers = {layer.name: layer for layer in model.layers}
    tensors: dict[tuple[str, int], list] = {}  # (layer name, node index) → its output tensors
    input_layers, output_layers = _triples(config["input_layers"]), _triples(config["output_layers"])
    for (name, _node, _index), new_name in zip(input_layers, input_names, strict=True):
        shape = tuple(layers[name].output.shape[1:])
        tensors[(name, 0)] = [tk.Input(shape, dtype=layers[name].output.dtype, name=new_name)]
    built, made = [], {}
    pending = [(lc, i, node) for lc in config["layers"] for i, node in enumerate(lc.get("inbound_nodes", []))]
    while pending:
        progress = []
        for entry in pending:
            lc, index, node = entry
            try:
                args = _resolve(node.get("args", []), tensors)
                kwargs = _resolve(node.get("kwargs", {}), tensors)
            except KeyError:  # an input of this node is not built yet (shared layers, odd config order)
                continue
            name = lc["config"]["name"]
            if name not in made:
                made[name] = _tf_keras_layer(tk, layers[name], _rename(layers[name], model, output_names))
                built.append((layers[name], made[name]))
            out = made[name](*args, **kwargs)
            tensors[(name, index)] = list(out) if isinstance(out, list | tuple) else [out]
            progress.append(entry)
        if not progress:
            raise FinetuneUnsupported(
                f"cannot rebuild layer '{pending[0][0]['config']['name']}' in tf_keras: its inputs never resolve",
                hint="qat-int8 and pruned-int8 need a Sequential or Functional model",
            )
        pending = [e for e in pending if e not in progress]
    outputs = [tensors[(name, node)][index] for name, node, index in output_layers]
    inputs = [tensors[(name, 0)][0] for name, _n, _i in input_layers]
    return inputs, outputs, built


def _triples(layers: list) -> list:
    """Keras 3 writes one input or output as ``[name, node, index]`` and several as a list of those."""
    return [layers] if layers and isinstance(layers[0], str) else layers


def _resolve(value: Any, tensors: dict[tuple[str, int], list]) -> Any:
    """Replace the ``__keras_tensor__`` references of a Keras 3 node config with the rebuilt tensors."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            name, node, index = value["config"]["keras_history"]
            return tensors[(name, node)][index]
        return {k: _resolve(v, tensors) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(v, tensors) for v in value]
    return value


def _tf_keras_layer(tk: Any, layer: Any, name: str) -> Any:
    cls_name = type(layer).__name__
    if cls_name in ("Functional", "Sequential", "Model"):  # tfmot cannot quantize a model nested in a model anyway
        raise FinetuneUnsupported(
            f"layer '{layer.name}' is a nested {cls_name} model, which tfmot cannot fine-tune",
            hint="skip qat-int8 and pruned-int8 (--variants fp32,fp16,dynamic,int8), or flatten the model",
        )
    cls = getattr(tk.layers, cls_name, None)
    if not isinstance(cls, type):
        raise FinetuneUnsupported(
            f"layer '{layer.name}' ({cls_name}) has no tf_keras equivalent, so qat-int8 and pruned-int8 cannot run",
            hint="skip those variants (--variants fp32,fp16,dynamic,int8) or rebuild the model with tf_keras layers",
        )
    # Initializers are dropped: the weights are copied, and Keras 3 initializers take arguments tf_keras lacks.
    config = {k: _legacy(v) for k, v in layer.get_config().items() if not k.endswith("_initializer")}
    config["name"] = name
    accepted = _accepted_keys(cls)
    for key in [k for k in config if k not in accepted]:
        if config[key] not in (None, False, 0, {}, [], ""):
            raise FinetuneUnsupported(
                f"layer '{layer.name}' ({cls_name}) uses '{key}={config[key]}', which tf_keras does not have",
                hint="skip qat-int8 and pruned-int8, or rebuild the model without that option",
            )
        del config[key]
    try:
        return cls.from_config(config)  # type: ignore[attr-defined]
    except Exception as e:
        raise FinetuneUnsupported(
            f"layer '{layer.name}' ({cls_name}) cannot be rebuilt in tf_keras: {str(e).splitlines()[0][:160]}",
            hint="skip qat-int8 and pruned-int8 (--variants fp32,fp16,dynamic,int8)",
        ) from e


def _accepted_keys(cls: Any) -> set[str]:
    """The keyword arguments a tf_keras layer class takes, its bases' included (subclasses forward ``**kwargs``)."""
    keys = {"input_shape", "batch_input_shape", "batch_size", "input_dim"}  # Layer reads these from kwargs
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            keys |= set(inspect.signature(vars(klass)["__init__"]).parameters)
    return keys - {"self", "args", "kwargs"}


def _legacy(value: Any) -> Any:
    """Keras 3's serialized objects as tf_keras reads them: dtype policies as names, objects as class+config."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        if value["class_name"] in ("DTypePolicy", "FloatDTypePolicy"):
            return value["config"]["name"]
        return {"class_name": value["class_name"], "config": _legacy(value["config"])}
    if isinstance(value, dict):
        return {k: _legacy(v) for k, v in value.items()}
    return value


def _copy_weights(original: Any, new: Any) -> None:
    weights = original.get_weights()
    shapes = [w.shape for w in weights]
    expected = [tuple(w.shape) for w in new.get_weights()]
    if [tuple(s) for s in shapes] != expected:
        raise FinetuneUnsupported(
            f"layer '{original.name}' ({type(original).__name__}) keeps its weights differently in tf_keras "
            f"({shapes} vs {expected})",
            hint="skip qat-int8 and pruned-int8 (--variants fp32,fp16,dynamic,int8)",
        )
    new.set_weights(weights)
