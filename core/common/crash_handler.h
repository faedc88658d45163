// A fatal-signal handler that writes the signal and the native stack to stderr before
// the process dies (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT), so that a crash in a
// server or a benchmark on a machine without a debugger still says where it was.
// Frames are printed as `binary(+offset)`: `addr2line -f -C -e binary offset` names them.
#pragma once

namespace banyan::core {

/// Installs the handler once per process (later calls do nothing). The handler
/// only calls async-signal-safe functions, then re-raises the signal with the
/// default action (so the exit status and core dumps stay as without it).
void install_crash_handler();

}  // namespace banyan::core
