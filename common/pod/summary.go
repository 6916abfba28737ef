package pod

import (
	"encoding/json"
	"fmt"
)

// Summary is what `rkt list` and `rkt status` show of a pod manifest: the
// apps with their images and mounts, the volumes the mounts name, and the
// user annotations and labels. It is decoded with encoding/json alone,
// without appc's schema types, whose validation of every name, label,
// isolator and hash costs three times the decoding itself: for `rkt list`
// of thousands of pods that validation was most of its CPU time. Whatever
// appc's PodManifest accepts decodes to the same values here
// (FuzzSummary); a manifest appc would refuse for a reason list does not
// show (a bad isolator, say) is still summarised.
type Summary struct {
	Apps            []SummaryApp      `json:"apps"`
	Volumes         []SummaryVolume   `json:"volumes"`
	UserAnnotations map[string]string `json:"userAnnotations"`
	UserLabels      map[string]string `json:"userLabels"`
}

// SummaryApp is one app of the pod manifest.
type SummaryApp struct {
	Name  string `json:"name"`
	Image struct {
		Name   *string        `json:"name"`
		ID     string         `json:"id"`
		Labels []SummaryLabel `json:"labels"`
	} `json:"image"`
	App *struct {
		UserAnnotations map[string]string `json:"userAnnotations"`
		UserLabels      map[string]string `json:"userLabels"`
	} `json:"app"`
	Mounts []struct {
		Volume string `json:"volume"`
		Path   string `json:"path"`
	} `json:"mounts"`
}

// SummaryLabel is an image label.
type SummaryLabel struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SummaryVolume is a volume of the pod manifest.
type SummaryVolume struct {
	Name     string `json:"name"`
	Source   string `json:"source"`
	ReadOnly *bool  `json:"readOnly"`
}

// ImageLabel is the value of the app's image label name ("version").
func (a *SummaryApp) ImageLabel(name string) (string, bool) {
	for _, l := range a.Image.Labels {
		if l.Name == name {
			return l.Value, true
		}
	}
	return "", false
}

// Summary reads the pod manifest ("pod") and decodes what list and status
// show of it. A pod being prepared may not have one yet (ErrNotFound).
func (p *Pod) Summary() (*Summary, error) {
	b, err := p.readFile(ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of pod %s: %w", p.UUID, err)
	}
	return decodeSummary(b)
}

// decodeSummary decodes a pod manifest's summary. Like appc, it wants a
// JSON object of kind PodManifest.
func decodeSummary(b []byte) (*Summary, error) {
	var s struct {
		Kind string `json:"acKind"`
		Summary
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parsing pod manifest: %w", err)
	}
	if s.Kind != "PodManifest" {
		return nil, fmt.Errorf("parsing pod manifest: acKind %q, want PodManifest", s.Kind)
	}
	return &s.Summary, nil
}
