package onnx

// Regenerate onnxpb/onnx.pb.go from proto/onnx.proto (needs /usr/bin/protoc).
//go:generate bash proto/generate.sh
