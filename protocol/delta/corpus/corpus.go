// Package corpus generates the model pairs that the delta benchmarks,
// docs/deltas.md and the simulator measure: synthetic int8 models laid out like a TFLite
// flatbuffer (tensor tables in front, 16-byte aligned weight buffers after
// them), deterministic from a seed.
//
// No Debian package installable here ships a TFLite model, so the models
// are synthetic. What matters for a delta is kept realistic: int8 weights
// with the spread of a quantised layer (an Irwin-Hall bell, standard
// deviation about 37), int32 biases, per-tensor scales, tensor sizes of a
// MobileNet-style keyword-spotting network (depthwise and pointwise
// convolutions, a dense head), and absolute buffer offsets in the tensor
// tables, so inserting a tensor shifts every later offset.
//
// The package uses integer arithmetic only, so a seed gives the same bytes
// on every platform and Go version (math/rand/v2's PCG is specified).
package corpus

import (
	"encoding/binary"
	"math/rand/v2"
)

// Pair is a base and a target image.
type Pair struct {
	// Name is the pair's letter and short name, as docs/deltas.md lists.
	Name string
	// Base is the image a node runs.
	Base []byte
	// Target is the image it should run.
	Target []byte
}

// Pairs returns the corpus of issue 15 item 4 for seed, models of about
// 200 KiB:
//
//	(a) head: the dense head retrained, every other byte unchanged
//	(b) finetune: every weight nudged (a full fine-tune)
//	(c) operator: one block inserted (a new operator with its tensors)
//	(d) unrelated: two models from different seeds and architectures
func Pairs(seed uint64) []Pair {
	base := kws(seed, 4, 0)
	return []Pair{
		{"a-head", base.bytes(), base.retrainHead(seed + 1).bytes()},
		{"b-finetune", base.bytes(), base.fineTune(seed + 2).bytes()},
		{"c-operator", base.bytes(), kws(seed, 4, 1).withVersion("1.1").bytes()},
		{"d-unrelated", base.bytes(), kws(seed+3, 5, 0).bytes()},
	}
}

// Large returns a pair of models of about 1 MiB: the head retrained, and a
// model from another seed, for timing Diff.
func Large(seed uint64) (head, unrelated Pair) {
	base := kws(seed, 9, 0)
	head = Pair{"large-head", base.bytes(), base.retrainHead(seed + 1).bytes()}
	unrelated = Pair{"large-unrelated", base.bytes(), kws(seed+3, 9, 0).bytes()}
	return head, unrelated
}

// tensor is one tensor of a model.
type tensor struct {
	name  string
	shape [4]int32
	int32 bool // int32 bias, else int8 weights
	scale uint32
	data  []byte
}

type model struct {
	version string
	tensors []tensor
	ops     [][3]int32 // opcode, first input tensor, output tensor
}

// gen draws deterministic values.
type gen struct{ r *rand.Rand }

func newGen(seed, stream uint64) gen { return gen{rand.New(rand.NewPCG(seed, stream))} }

// weight returns an int8 weight from a bell of standard deviation about 37.
func (g gen) weight() int8 {
	v := g.r.Uint64()
	s := int(v&0xff) + int(v>>8&0xff) + int(v>>16&0xff) + int(v>>24&0xff) - 510
	return int8(max(-127, min(127, s/4)))
}

func (g gen) weights(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.weight())
	}
	return b
}

func (g gen) biases(n int) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(int32(g.weight())*64))
	}
	return b
}

// kws builds a MobileNet-style keyword-spotting model: a first
// convolution, depthwise-separable blocks, a dense head of 35 classes.
// width scales the channels, in quarters; extra inserts that many blocks after the
// fourth.
func kws(seed uint64, width, extra int) *model {
	m := &model{version: "1.0"}
	g := newGen(seed, 0)
	// Each inserted block draws from its own stream, so that the blocks
	// around it keep their weights.
	add := func(g gen, name string, shape [4]int32, op int32) {
		n := int(shape[0] * max(shape[1], 1) * max(shape[2], 1) * max(shape[3], 1))
		in := int32(len(m.tensors))
		m.tensors = append(m.tensors,
			tensor{name: name + "/weights", shape: shape, scale: uint32(g.r.Uint64()), data: g.weights(n)},
			tensor{name: name + "/bias", shape: [4]int32{shape[0]}, int32: true, scale: uint32(g.r.Uint64()), data: g.biases(int(shape[0]))})
		m.ops = append(m.ops, [3]int32{op, in, in + 1})
	}
	w := int32(width)
	add(g, "conv0", [4]int32{4 * w, 3, 3, 1}, 3)
	chans := []int32{32, 64, 64, 128, 128, 128, 128, 128, 256}
	in := 4 * w
	for i, c := range chans {
		c = c * w / 4
		name := "block" + string(rune('a'+i))
		add(g, name+"/depthwise", [4]int32{1, 3, 3, in}, 4)
		add(g, name+"/pointwise", [4]int32{c, 1, 1, in}, 3)
		in = c
		if i == 3 {
			for k := 0; k < extra; k++ {
				ge := newGen(seed, uint64(100+k))
				name := "inserted" + string(rune('a'+k))
				add(ge, name+"/depthwise", [4]int32{1, 3, 3, in}, 4)
				add(ge, name+"/pointwise", [4]int32{in, 1, 1, in}, 3)
			}
		}
	}
	add(g, "dense", [4]int32{64 * w, in}, 9)
	add(g, "head", [4]int32{35, 64 * w}, 9)
	return m
}

func (m *model) clone() *model {
	c := &model{version: m.version, ops: m.ops, tensors: make([]tensor, len(m.tensors))}
	for i, t := range m.tensors {
		t.data = append([]byte(nil), t.data...)
		c.tensors[i] = t
	}
	return c
}

func (m *model) withVersion(v string) *model { m.version = v; return m }

// retrainHead returns a copy of m with the head's weights, bias and scales
// drawn again.
func (m *model) retrainHead(seed uint64) *model {
	c := m.clone().withVersion("1.1")
	g := newGen(seed, 1)
	for i := len(c.tensors) - 2; i < len(c.tensors); i++ {
		t := &c.tensors[i]
		t.scale = uint32(g.r.Uint64())
		if t.int32 {
			t.data = g.biases(len(t.data) / 4)
		} else {
			t.data = g.weights(len(t.data))
		}
	}
	return c
}

// fineTune returns a copy of m with every weight moved by -2..2 (a quarter
// of them left as they were after requantisation: 25% 0, 30% each +1 and
// -1, 7.5% each +2 and -2), every bias by -15..15 and every scale a little.
func (m *model) fineTune(seed uint64) *model {
	c := m.clone().withVersion("1.1")
	g := newGen(seed, 2)
	for i := range c.tensors {
		t := &c.tensors[i]
		t.scale += uint32(g.r.Uint64() % 4096)
		if t.int32 {
			for k := 0; k < len(t.data); k += 4 {
				v := int32(binary.LittleEndian.Uint32(t.data[k:])) + int32(g.r.Uint64()%31) - 15
				binary.LittleEndian.PutUint32(t.data[k:], uint32(v))
			}
			continue
		}
		for k := range t.data {
			var d int
			switch v := g.r.Uint64() % 40; {
			case v < 10:
				d = 0
			case v < 22:
				d = 1
			case v < 34:
				d = -1
			case v < 37:
				d = 2
			default:
				d = -2
			}
			t.data[k] = byte(int8(max(-127, min(127, int(int8(t.data[k]))+d))))
		}
	}
	return c
}

// bytes lays m out: "TFL3" and a header, the operator table, the tensor
// tables (64 bytes each: name, type, shape, buffer offset and size, scale),
// the description string, then the buffers, each 16-byte aligned.
func (m *model) bytes() []byte {
	desc := "edgeota synthetic kws " + m.version
	const tableSize = 64
	front := 16 + 12*len(m.ops) + tableSize*len(m.tensors) + 4 + len(desc)
	off := (front + 15) &^ 15
	offsets := make([]int, len(m.tensors))
	for i, t := range m.tensors {
		offsets[i] = off
		off = (off + 4 + len(t.data) + 15) &^ 15
	}
	b := make([]byte, 0, off)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = append(b, "TFL3"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.ops)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.tensors)))
	for _, op := range m.ops {
		for _, v := range op {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	}
	for i, t := range m.tensors {
		var name [32]byte
		copy(name[:], t.name)
		b = append(b, name[:]...)
		typ := uint32(9) // INT8
		if t.int32 {
			typ = 2 // INT32
		}
		b = binary.LittleEndian.AppendUint32(b, typ)
		for _, d := range t.shape[:3] {
			b = binary.LittleEndian.AppendUint32(b, uint32(d))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(offsets[i]))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.data)))
		b = binary.LittleEndian.AppendUint32(b, t.scale)
		b = binary.LittleEndian.AppendUint32(b, uint32(t.shape[3]))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = append(b, desc...)
	for i, t := range m.tensors {
		b = append(b, make([]byte, offsets[i]-len(b))...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.data)))
		b = append(b, t.data...)
	}
	return append(b, make([]byte, off-len(b))...)
}
