// Package clock holds the clocks that the commands, the simulator and the
// tests hand to the gateway and the node agent:
//
//   - [Real] is the wall clock.
//   - [Scaled] runs a number of times faster than the clock it is built on,
//     from the moment it is made: the simulator's compressed time, in which
//     bakes and probations of minutes pass in seconds.
//   - [Fake] stands still until a test moves it with [Fake.Advance] or
//     [Fake.Set]; what waits on [Fake.After] is woken by that move.
//
// The consumers declare the clock they need and import nothing from here:
// the node agent's nodeagent.Clock (Now and After), the gateway's
// gateway.Clock (Now; a Scale method, which [Scaled] has, is reported as
// the gateway's time scale), a store's func() time.Time (pass a clock's
// Now method).
package clock
