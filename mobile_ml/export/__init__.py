"""Export: Keras model → quantized .tflite variants, each proven on evaluation rows with the LiteRT interpreter.

sources     what an export takes (model, eval/calibration/fine-tuning data, labels): from a run or from files
model_file  loading a model file (Keras 3 / tf_keras .keras, .h5, SavedModel) behind one interface
eval_data   loading data files (.npz, image folders, CSV) shaped for a model's inputs
parity      a variant against the source model: classification, regression and per-output figures

options     variant names and export options
convert     the TFLite converter, one variant at a time, with readable conversion errors
finetune    quantization-aware training and pruning (tensorflow-model-optimization)
tflite_file loading, inspecting and running .tflite files with LiteRT
metadata    metadata.json for apps, with a health-check case
report      result objects, export.json/csv/png, recommendation and the accuracy gate
variant     one variant: build, prove with LiteRT, write model.tflite + metadata.json
exporter    the stage itself: RUNDIR → RUNDIR/exports, MODEL FILE → <model>_exports/
"""
