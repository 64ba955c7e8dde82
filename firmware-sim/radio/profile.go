package radio

import (
	"fmt"
	"slices"
	"time"
)

// Profile names: the radios [LookupProfile] knows.
const (
	// ProfileThread is Thread over IEEE 802.15.4 at 2.4 GHz: 250 kbit/s,
	// 127-byte frames carrying 6LoWPAN fragments, a two-hop mesh route of
	// 20 to 50 ms per hop.
	ProfileThread = "thread"
	// ProfileSubGHz is a sub-GHz IEEE 802.15.4g-style link (Wi-SUN and
	// similar): 50 kbit/s, 255-byte frames, 200 ms round trip.
	ProfileSubGHz = "subghz"
	// ProfileNBIoT is an NB-IoT-like cellular link: 60 kbit/s, no
	// fragmentation visible to IP (the modem's RLC segments and retries),
	// a round trip of 1 to 2 s.
	ProfileNBIoT = "nbiot"
	// ProfileBLE is Bluetooth LE 1M PHY with 6LoWPAN over L2CAP (IPSP,
	// RFC 7668): 1 Mbit/s, 251-byte link-layer payloads, a 50 ms
	// connection interval (50 to 150 ms round trip).
	ProfileBLE = "ble"
)

// profiles holds one direction of each profile; both directions of a
// profile are alike. The numbers are what each radio spends on air,
// simplified (see the package documentation, Profiles):
//
//   - thread: a frame is PHY preamble, SFD and length (6 bytes), a MAC
//     header with short addresses and PAN id compression (9), the FCS (2)
//     and a 6LoWPAN FRAGN header (5): 22 bytes around at most 104 datagram
//     bytes (127 - 9 - 2 - 5 - 7 bytes of compressed IPv6/UDP header,
//     rounded down to the 8-byte fragment unit). Each frame also costs
//     about 2 ms: CSMA-CA backoff (3.5 unit backoff periods of 320 us on
//     average), CCA, the 192 us turnaround and the 11-byte MAC ACK.
//   - subghz: 255-byte frames: SHR and PHR (12 bytes), MAC header (9),
//     FCS-32 (4), FRAGN (5): 30 bytes around at most 200 datagram bytes;
//     5 ms per frame for backoff, turnaround and ACK at 50 kbit/s.
//   - nbiot: one frame per datagram with 12 bytes of PDCP, RLC and MAC
//     headers around a ROHC-compressed IP header; the radio's scheduling
//     shows as latency, 0.5 to 1 s each way.
//   - ble: 251-byte link-layer payloads of which 4 are the L2CAP header
//     (247 datagram bytes); preamble, access address, LL header, MIC and
//     CRC add 14 bytes; each packet costs 2 T_IFS (150 us) and the peer's
//     empty packet (80 us). Latency is the wait for a connection event.
var profiles = map[string]Link{
	ProfileThread: {
		Bandwidth: 250_000, FrameMTU: 104, FrameOverhead: 22, FrameGap: 2 * time.Millisecond,
		Hops: 2, Latency: 20 * time.Millisecond, Jitter: 30 * time.Millisecond,
	},
	ProfileSubGHz: {
		Bandwidth: 50_000, FrameMTU: 200, FrameOverhead: 30, FrameGap: 5 * time.Millisecond,
		Hops: 1, Latency: 100 * time.Millisecond,
	},
	ProfileNBIoT: {
		Bandwidth: 60_000, FrameOverhead: 12,
		Hops: 1, Latency: 500 * time.Millisecond, Jitter: 500 * time.Millisecond,
	},
	ProfileBLE: {
		Bandwidth: 1_000_000, FrameMTU: 247, FrameOverhead: 18, FrameGap: 380 * time.Microsecond,
		Hops: 1, Latency: 25 * time.Millisecond, Jitter: 50 * time.Millisecond,
	},
}

// LookupProfile returns one direction of the named radio profile: its
// bandwidth, framing, per-frame overhead, hops and per-hop latency, with
// no loss (a scenario sets Loss or FrameLoss). It reports
// [ErrUnknownProfile] for a name that is not one of [ProfileNames].
func LookupProfile(name string) (Link, error) {
	l, ok := profiles[name]
	if !ok {
		return Link{}, fmt.Errorf("%w %q: want one of %v", ErrUnknownProfile, name, ProfileNames())
	}
	return l, nil
}

// ProfileNames returns the names [LookupProfile] knows, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
