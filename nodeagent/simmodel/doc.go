// Package simmodel is a simulated inference runtime for the edgeota node
// agent: the workload a simulated node runs on a freshly activated model
// image while the image is on probation. The agent has no default runtime:
// 'edgeota node' (with its --model-seed) and the fleet simulator give it
// this one, [Runtime.ForAgent].
//
// # Image header
//
// An image whose first line starts with the magic word [Magic] describes how
// its model behaves:
//
//	edgeota-sim-model error_permille=5 p50_us=9000 p99_us=30000 ram_bytes=180000 cpu_permille=300 crash_on_boot=0
//
// The keys may come in any order and each is optional; a missing key takes
// its value from [Healthy]:
//
//	key             meaning                                       default
//	error_permille  inferences per thousand that fail, <= 1000    0
//	p50_us          median latency in µs, >= 1                    8000
//	p99_us          p99 latency in µs, >= p50_us, <= 100 s        20000
//	ram_bytes       RAM the loaded model uses                     131072
//	cpu_permille    CPU it uses, per-mille of one core            300
//	crash_on_boot   1: the model fails to load; 0 or 1            0
//	metric.NAME     a model metric every health report carries    none
//
// metric.NAME=VALUE (NAME of a-z, 0-9 and _, VALUE a signed decimal, at
// most one per header) makes [Model.Metrics] report NAME = VALUE, so a
// deployment's metric gate can fire in a simulation:
//
//	edgeota-sim-model error_permille=2 metric.low_confidence_permille=80
//
// An unknown or repeated key, a value that is not a decimal number, or a
// value out of range is an error (wrapping [ErrHeader]) that names the key.
// Any image whose first line does not start with the magic word behaves as
// [Healthy]. Only the first [MaxHeaderLen] bytes of an image are read.
//
// # Runtime and models
//
// [Runtime.Load] reads an image's header and returns a [Model], or an error
// wrapping [ErrCrashOnBoot]. [Model.Infer] never sleeps: it draws a latency
// from a log-normal distribution fitted to p50_us and p99_us (capped at four
// times p99_us) and fails with [ErrInference] at rate error_permille/1000.
// Every model's randomness is a PCG generator seeded from [Runtime.Seed] and
// the image's first line, so the same seed and image give the same sequence.
package simmodel
