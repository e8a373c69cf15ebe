package canary

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/weft-mesh/weft/config"
	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// Payload is the JSON body of every webhook call, as Flagger sends it.
type Payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// hooks returns the Canary's webhooks of one type ("" counts as rollout).
func hooks(cd *flaggerv1beta1.Canary, typ string) []*flaggerv1beta1.CanaryWebhook {
	var out []*flaggerv1beta1.CanaryWebhook
	for _, w := range cd.GetAnalysis().GetWebhooks() {
		t := w.GetType()
		if t == "" {
			t = config.WebhookRollout
		}
		if t == typ {
			out = append(out, w)
		}
	}
	return out
}

// checksum identifies the revision under analysis for webhooks.
func checksum(st *flaggerv1beta1.CanaryStatus) string {
	h := fnv.New64a()
	h.Write([]byte(st.GetLastAppliedSpec()))
	return strconv.FormatUint(h.Sum64(), 16)
}

// call POSTs the payload to a webhook and fails unless it answers 200, 201
// or 202 (Flagger's rule) within its timeout, trying 1 + retries times.
func (c *Controller) call(ctx context.Context, cd *config.Object, sum string, w *flaggerv1beta1.CanaryWebhook, phase string, meta map[string]string) error {
	p := Payload{Name: cd.Meta.Name, Namespace: cd.Meta.Namespace, Phase: phase, Checksum: sum, Metadata: w.GetMetadata()}
	if meta != nil {
		p.Metadata = meta
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	timeout := DefaultWebhookTimeout
	if d, err := time.ParseDuration(w.GetTimeout()); err == nil && d > 0 {
		timeout = d
	}
	var last error
	for attempt := 0; attempt <= int(w.GetRetries()); attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if last = c.post(ctx, w.GetUrl(), body, timeout); last == nil {
			return nil
		}
	}
	return last
}

func (c *Controller) post(ctx context.Context, url string, body []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 202 {
		msg := oneLine(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return fmt.Errorf("%d %s", resp.StatusCode, msg)
	}
	return nil
}

// sendEvent passes an event to the Canary's event webhooks, in the
// background: an unreachable event receiver must not hold up a release.
func (c *Controller) sendEvent(cd *config.Object, st *flaggerv1beta1.CanaryStatus, ev Event) {
	spec := cd.Spec.(*flaggerv1beta1.Canary)
	for _, w := range hooks(spec, config.WebhookEvent) {
		meta := map[string]string{"eventMessage": ev.Message, "eventType": ev.Type, "timestamp": strconv.FormatInt(ev.Time.UnixMilli(), 10)}
		for k, v := range w.GetMetadata() {
			meta[k] = v
		}
		phase, sum := st.GetPhase(), checksum(st)
		select {
		case c.eventQueue <- func(ctx context.Context) {
			if err := c.call(ctx, cd, sum, w, phase, meta); err != nil {
				c.log.Warn("canary event webhook failed", "canary", cd.Meta.Namespace+"/"+cd.Meta.Name, "webhook", w.GetName(), "err", err)
			}
		}:
		default:
			c.log.Warn("canary event webhook queue full; event dropped", "canary", cd.Meta.Namespace+"/"+cd.Meta.Name, "webhook", w.GetName())
		}
	}
}
