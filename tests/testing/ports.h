// A loopback port for a process that must be told its port before it starts
// (a master restarted at the same address, workers created ahead of it).
#ifndef ELASTICBATCH_TESTS_TESTING_PORTS_H_
#define ELASTICBATCH_TESTS_TESTING_PORTS_H_

namespace elasticbatch::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it);
// 0 when none could be had. Another process may still take it first: tests
// that use it accept that small risk rather than a fixed port.
int FreeLoopbackPort();

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_PORTS_H_
