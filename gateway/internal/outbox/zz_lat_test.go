package outbox
import ("testing";"time")
func TestZZLatency(t *testing.T){
	o, _ := openTest(t, Config{})
	for range 50 { mustAppend(t,o,KindHealth,"n",benchPayload) }
	start:=time.Now()
	n:=500
	for range n { mustAppend(t,o,KindHealth,"n",benchPayload) }
	t.Logf("sequential append latency %v", time.Since(start)/time.Duration(n))
}
