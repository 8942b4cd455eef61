package caffe

// Regenerate caffepb/caffe.pb.go from proto/caffe.proto (needs /usr/bin/protoc).
//go:generate bash proto/generate.sh
