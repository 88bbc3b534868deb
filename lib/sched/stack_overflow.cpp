// A task that overflows its fiber's stack faults in the guard below it. Instead of a bare
// "Segmentation fault", the process says which task overflowed and how large its stack was,
// as Go and Rust report it; then the fault takes its usual course (a core dump, or a
// sanitizer's report), since the task's state cannot be recovered.
//
// The handler runs on an alternate signal stack (the faulting one is full) and only reads
// what the faulting thread set before the fault, with async-signal-safe calls.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "sched/fiber.h"
#include "lumen/detail/actor_core.h"
#include "lumen/detail/submit_task.h"

namespace lumen::detail {

namespace {

struct sigaction g_previous;
constexpr std::size_t kSignalStackBytes = 64 * 1024;

void write_text(const char* text, std::size_t n) noexcept {
  while (n > 0) {
    ssize_t k = ::write(STDERR_FILENO, text, n);
    if (k <= 0) return;
    text += k;
    n -= static_cast<std::size_t>(k);
  }
}
void write_text(const char* text) noexcept { write_text(text, std::strlen(text)); }
void write_number(std::size_t v) noexcept {
  char digits[24];
  std::size_t n = 0;
  do {
    digits[sizeof digits - 1 - n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  write_text(digits + sizeof digits - n, n);
}

void describe_running_task(const TaskContext& ctx) noexcept {
  if (ctx.task != nullptr) {
    const auto* task = static_cast<const SubmitTaskBase*>(ctx.task);
    if (task->settings != nullptr && !task->settings->name.empty()) {
      write_text("task '");
      write_text(task->settings->name.data(), task->settings->name.size());
      write_text("'");
      return;
    }
    write_text("an unnamed task");
    return;
  }
  if (ctx.actor != nullptr) {
    const ActorCore* actor = static_cast<const ActorContext*>(ctx.actor)->actor;
    const std::string& name = actor->settings().name;
    write_text("a method of actor ");
    if (name.empty()) {
      write_text("#");
      write_number(actor->id());
    } else {
      write_text("'");
      write_text(name.data(), name.size());
      write_text("'");
    }
    return;
  }
  write_text("a task");
}

// Gives the fault back to whoever handled SIGSEGV before: returning re-runs the faulting
// instruction, which then meets that handler (or the default action).
void pass_on(int sig, siginfo_t* info, void* context) noexcept {
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler == SIG_IGN) return;
  if (g_previous.sa_handler == SIG_DFL) {
    ::sigaction(SIGSEGV, &g_previous, nullptr);
    return;
  }
  g_previous.sa_handler(sig);
}

void on_segv(int sig, siginfo_t* info, void* context) {
  const Fiber* f = tls_running_fiber;
  const char* at = static_cast<const char*>(info->si_addr);
  if (f != nullptr && f->guard_low != nullptr && at >= f->guard_low &&
      at < static_cast<const char*>(f->stack_bottom)) {
    write_text("lumen: stack overflow in ");
    describe_running_task(f->context);
    write_text(": its fiber stack has ");
    write_number(f->stack_size);
    write_text(" bytes (Config::fiber_stack_size); raise it, or move large locals to the heap\n");
    ::sigaction(SIGSEGV, &g_previous, nullptr);
    return;
  }
  pass_on(sig, info, context);
}

}  // namespace

void install_overflow_report() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = &on_segv;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGSEGV, &action, &g_previous);
  });
}

void* make_signal_stack() {
  stack_t current{};
  // A sanitizer's runtime gives its threads an alternate stack already: keep it.
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return nullptr;
  void* base = ::mmap(nullptr, kSignalStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  stack_t st{};
  st.ss_sp = base;
  st.ss_size = kSignalStackBytes;
  if (::sigaltstack(&st, nullptr) != 0) {
    ::munmap(base, kSignalStackBytes);
    return nullptr;
  }
  return base;
}

void free_signal_stack(void* stack) noexcept {
  if (stack == nullptr) return;
  stack_t st{};
  st.ss_flags = SS_DISABLE;
  ::sigaltstack(&st, nullptr);
  ::munmap(stack, kSignalStackBytes);
}

}  // namespace lumen::detail
