// Package transfer carries a pretrained net to a classifier for new
// classes: it names the transfer-learning scenario for a data set's size
// and similarity and the layers to use (Advise), and trains a linear
// classifier on CNN codes and appends it to the net as an InnerProduct
// and a Softmax (TrainLinear, AppendClassifier).
package transfer
