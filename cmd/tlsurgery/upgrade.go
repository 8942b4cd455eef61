package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tlsurgery/tlsurgery/caffe"
)

func newUpgradeCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var out, format string
	var force bool
	cmd := &cobra.Command{
		Use:   "upgrade IN -o OUT",
		Short: "Rewrite a net or caffemodel of any format generation in the current format",
		Long: `upgrade reads IN (V0, V1 or current; text or binary; "-" for standard
input) and writes it in the current format to OUT ("-" for standard
output). The encoding follows OUT's extension (.prototxt, .pbtxt, .txt
and .pt are text, anything else binary) unless --format says otherwise;
a text net holds no weights. Each upgrade step is listed
on standard error. OUT is written atomically and never replaces IN unless
--force is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("missing -o OUT")
			}
			var net *caffe.Net
			var err error
			if args[0] == "-" {
				net, err = caffe.Read(stdin)
			} else {
				net, err = caffe.ReadFile(args[0])
			}
			if err != nil {
				return err
			}
			opts := caffe.WriteOptions{ReplaceSource: force}
			switch format {
			case "":
			case "text":
				opts.Encoding = caffe.Text
			case "binary":
				opts.Encoding = caffe.Binary
			default:
				return fmt.Errorf("unknown --format %q; use text or binary", format)
			}
			for _, n := range net.Notes {
				fmt.Fprintln(stderr, n.String())
			}
			enc := opts.Encoding
			if enc == 0 && out != "-" {
				enc = caffe.EncodingForPath(out)
			}
			if (enc == caffe.Text || enc == 0 && out == "-") && hasWeights(net) {
				fmt.Fprintln(stderr, "warning: a text net holds no weights; write a .caffemodel as well to keep them")
			}
			if out == "-" {
				if opts.Encoding == 0 {
					opts.Encoding = caffe.Text
				}
				return opts.Write(stdout, net)
			}
			return opts.WriteFile(net, out)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file, or - for standard output")
	cmd.Flags().StringVar(&format, "format", "", "output encoding: text or binary (default: from OUT's extension)")
	cmd.Flags().BoolVar(&force, "force", false, "allow OUT to be the same file as IN")
	return cmd
}
