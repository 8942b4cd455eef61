package forward

// resizingKernel is a kernel whose top sizes depend on the values of its
// bottoms, not only on their shapes, such as DetectionOutput, whose row
// count is known only after suppression. Run calls forwardResize in
// place of forward and stores the tensors it returns, so the shapes in
// the Result may differ from the graph's inferred (placeholder) shapes.
type resizingKernel interface {
	forwardResize(bottoms []*Tensor) ([]*Tensor, error)
}
