// Package surgery rewrites (net, weights) pairs for transfer learning; each
// operation returns a new net and a report and never modifies its inputs.
package surgery
