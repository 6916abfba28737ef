package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rktng/rkt/aci/store"
)

type imageListFlags struct {
	Fields   string
	Sort     string
	Order    string
	Full     bool
	NoLegend bool
	Format   string
}

var imageFieldHeaders = map[string]string{
	"id": "ID", "name": "NAME", "importtime": "IMPORT TIME", "lastused": "LAST USED", "size": "SIZE", "latest": "LATEST",
}

func newImageListCommand(g *globals) *cobra.Command {
	var f imageListFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runImageList(g, f)
		},
	}
	cmd.Flags().StringVar(&f.Fields, "fields", "id,name,size,importtime,lastused", "comma-separated list of fields to display: id,name,importtime,lastused,size,latest")
	cmd.Flags().StringVar(&f.Sort, "sort", "importtime", "sort the output by fields: id,name,importtime,lastused,size,latest")
	cmd.Flags().StringVar(&f.Order, "order", "asc", "order of the sort: asc, desc")
	cmd.Flags().BoolVar(&f.Full, "full", false, "use long output format")
	cmd.Flags().BoolVar(&f.NoLegend, "no-legend", false, "suppress a legend with the list")
	cmd.Flags().StringVar(&f.Format, "format", "", "choose the output format: json, json-pretty")
	return cmd
}

type imageJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ImportTime   int64  `json:"import_time"`
	LastUsedTime int64  `json:"last_used_time"`
	Size         int64  `json:"size"`
}

func imageName(i store.ImageInfo) string {
	if v, ok := i.Labels.Get("version"); ok {
		return i.Name + ":" + v
	}
	return i.Name
}

func runImageList(g *globals, f imageListFlags) error {
	if err := checkFormat(f.Format); err != nil {
		return err
	}
	fields := strings.Split(f.Fields, ",")
	for _, fl := range fields {
		if _, ok := imageFieldHeaders[fl]; !ok {
			return usageErrorf("--fields: unknown field %q (want id,name,importtime,lastused,size,latest)", fl)
		}
	}
	less, err := imageLess(f.Sort)
	if err != nil {
		return err
	}
	if f.Order != "asc" && f.Order != "desc" {
		return usageErrorf("--order %q: want asc or desc", f.Order)
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	infos, err := st.List()
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	sort.SliceStable(infos, func(i, k int) bool {
		if f.Order == "desc" {
			return less(infos[k], infos[i])
		}
		return less(infos[i], infos[k])
	})
	if f.Format != "" {
		out := make([]imageJSON, 0, len(infos))
		for _, i := range infos {
			out = append(out, imageJSON{ID: i.ID, Name: imageName(i), ImportTime: i.ImportTime.UnixNano(),
				LastUsedTime: i.LastUsed.UnixNano(), Size: i.Size})
		}
		return printJSON(g.stdout, out, f.Format)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 8, 1, '\t', 0)
	if !f.NoLegend {
		var hs []string
		for _, fl := range fields {
			hs = append(hs, imageFieldHeaders[fl])
		}
		fmt.Fprintln(tw, strings.Join(hs, "\t"))
	}
	for _, i := range infos {
		var cols []string
		for _, fl := range fields {
			cols = append(cols, imageField(i, fl, f.Full))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

func imageField(i store.ImageInfo, field string, full bool) string {
	switch field {
	case "id":
		if full || len(i.ID) < 19 {
			return i.ID
		}
		return i.ID[:19]
	case "name":
		return imageName(i)
	case "importtime":
		return humanTime(i.ImportTime, full)
	case "lastused":
		return humanTime(i.LastUsed, full)
	case "size":
		if full {
			return fmt.Sprint(i.Size)
		}
		return humanBytes(i.Size)
	case "latest":
		return fmt.Sprint(i.Latest)
	}
	return ""
}

func imageLess(field string) (func(a, b store.ImageInfo) bool, error) {
	switch field {
	case "id":
		return func(a, b store.ImageInfo) bool { return a.ID < b.ID }, nil
	case "name":
		return func(a, b store.ImageInfo) bool { return imageName(a) < imageName(b) }, nil
	case "importtime":
		return func(a, b store.ImageInfo) bool { return a.ImportTime.Before(b.ImportTime) }, nil
	case "lastused":
		return func(a, b store.ImageInfo) bool { return a.LastUsed.Before(b.LastUsed) }, nil
	case "size":
		return func(a, b store.ImageInfo) bool { return a.Size < b.Size }, nil
	case "latest":
		return func(a, b store.ImageInfo) bool { return !a.Latest && b.Latest }, nil
	}
	return nil, usageErrorf("--sort: unknown field %q (want id,name,importtime,lastused,size,latest)", field)
}

// humanBytes prints sizes as rkt did (base 1024: "7.6MiB").
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
