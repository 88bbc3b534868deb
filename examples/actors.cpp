// Actors: a bank account that lives on the scheduler, a named ledger found by name, a method
// that throws, an actor that restarts, and a kill.
#include <lumen/lumen.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

struct Account {
  explicit Account(long opening) : balance(opening) {}
  long deposit(long amount) { return balance += amount; }
  long withdraw(long amount) {
    if (amount > balance) throw std::domain_error("insufficient funds");
    return balance -= amount;
  }
  long balance;
};

struct Ledger {
  std::vector<std::string> lines;
  std::size_t record(std::string line) {
    lines.push_back(std::move(line));
    return lines.size();
  }
};

// Loses its state when it crashes; max_restarts brings it back from its arguments.
struct Flaky {
  explicit Flaky(int start) : count(start) {}
  int next() { return ++count; }
  int crash() { lumen::exit_actor(); }
  bool restarted() const { return lumen::actor_restarted(); }
  int count;
};

int main() {
  lumen::Runtime rt;

  // Calls run one at a time, in order: 1000 deposits from 4 tasks never race.
  auto account = lumen::actor<Account>(100);
  std::vector<lumen::ObjectRef<void>> clients;
  for (int c = 0; c < 4; ++c)
    clients.push_back(lumen::submit([account] {
      for (int i = 0; i < 250; ++i) account.call(&Account::deposit, 1);
    }));
  for (auto& c : clients) lumen::get(c);
  std::printf("balance after 1000 deposits of 1 from 4 tasks: %ld\n", lumen::get(account.call(&Account::deposit, 0)));

  // A method that throws fails only its own call.
  auto overdraft = account.call(&Account::withdraw, 5000);
  try {
    lumen::get(overdraft);
  } catch (const std::domain_error& e) {
    std::printf("withdraw 5000 failed: %s; the account still serves: balance %ld\n", e.what(),
                lumen::get(account.call(&Account::withdraw, 100)));
  }

  // A named actor outlives its handles and is found by name.
  lumen::actor<Ledger>(lumen::ActorOptions{.name = "ledger"});
  if (auto ledger = lumen::get_actor<Ledger>("ledger")) {
    ledger->call(&Ledger::record, std::string("opened"));
    std::printf("ledger has %zu lines\n", lumen::get(ledger->call(&Ledger::record, std::string("audited"))));
  }

  // exit_actor() ends the actor; with a restart left it is rebuilt from its arguments.
  auto flaky = lumen::actor<Flaky>(lumen::ActorOptions{.max_restarts = 1}, 10);
  std::printf("flaky counts %d, ", lumen::get(flaky.call(&Flaky::next)));
  try {
    lumen::get(flaky.call(&Flaky::crash));
  } catch (const lumen::actor_died& e) {
    std::printf("then crashed (%s);\n", e.what());
  }
  std::printf("after its restart (restarted: %s) it counts %d again\n",
              lumen::get(flaky.call(&Flaky::restarted)) ? "yes" : "no", lumen::get(flaky.call(&Flaky::next)));

  // kill() ends it for good: later calls fail with actor_died.
  flaky.kill();
  try {
    lumen::get(flaky.call(&Flaky::next));
  } catch (const lumen::actor_died& e) {
    std::printf("after kill(): %s\n", e.what());
  }

  lumen::Stats s = rt.stats();
  std::printf("runtime: %llu actors alive, %llu actor calls executed\n", static_cast<unsigned long long>(s.actors_alive),
              static_cast<unsigned long long>(s.actor_calls_executed));
}
