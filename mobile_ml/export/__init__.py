"""Export: Keras model → quantized .tflite variants, each proven on the test split with the LiteRT interpreter.

options     variant names and export options
convert     the TFLite converter, one variant at a time, with readable conversion errors
finetune    quantization-aware training and pruning (tensorflow-model-optimization)
tflite_file loading, inspecting and running .tflite files with LiteRT
metadata    metadata.json for apps, with a health-check case
report      result objects, export.json/csv/png, recommendation and the accuracy gate
exporter    the stage itself: RUNDIR → RUNDIR/exports
"""
