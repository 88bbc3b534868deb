// Ray's actor examples: a named actor found from elsewhere, concurrency, restarts after a
// failure, and an actor that stops itself.
#include <ray/api.h>

#include <chrono>
#include <iostream>
#include <thread>

class Counter {
 public:
  explicit Counter(int init) : count_(init) {}
  static Counter* FactoryCreate(int init) { return new Counter(init); }
  int Add(int x) { return count_ += x; }
  int Get() { return count_; }
  bool Restarted() { return ray::WasCurrentActorRestarted(); }
  void Stop() { ray::ExitActor(); }

 private:
  int count_;
};

class Sleeper {
 public:
  static Sleeper* FactoryCreate() { return new Sleeper(); }
  int Nap(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  }
};

RAY_REMOTE(Counter::FactoryCreate, &Counter::Add, &Counter::Get, &Counter::Restarted, &Counter::Stop,
           Sleeper::FactoryCreate, &Sleeper::Nap);

int main() {
  ray::Init();

  // A named actor can be found by name by any code in the job.
  auto counter = ray::Actor(Counter::FactoryCreate).SetName("global_counter").Remote(0);
  counter.Task(&Counter::Add).Remote(5);
  boost::optional<ray::ActorHandle<Counter>> found = ray::GetActor<Counter>("global_counter");
  std::cout << "GetActor(\"global_counter\") sees " << *found->Task(&Counter::Get).Remote().Get() << "\n";

  // With max concurrency 4, four naps of 100 ms overlap.
  auto sleeper = ray::Actor(Sleeper::FactoryCreate).SetMaxConcurrency(4).Remote();
  auto start = std::chrono::steady_clock::now();
  std::vector<ray::ObjectRef<int>> naps;
  for (int i = 0; i < 4; ++i) naps.push_back(sleeper.Task(&Sleeper::Nap).Remote(100));
  ray::Get(naps);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  std::cout << "4 naps of 100 ms on an actor with max concurrency 4 took " << ms << " ms\n";

  // An actor with restarts is rebuilt by its factory after Kill(false).
  auto restartable = ray::Actor(Counter::FactoryCreate).SetMaxRestarts(1).Remote(10);
  restartable.Task(&Counter::Add).Remote(1).Get();
  restartable.Kill(false);
  std::cout << "after Kill(false): count " << *restartable.Task(&Counter::Get).Remote().Get() << ", restarted "
            << std::boolalpha << *restartable.Task(&Counter::Restarted).Remote().Get() << "\n";

  // An actor may end itself; its later calls throw RayActorException.
  auto stopping = ray::Actor(Counter::FactoryCreate).Remote(0);
  try {
    stopping.Task(&Counter::Stop).Remote().Get();
  } catch (const ray::internal::RayActorException& e) {
    std::cout << "ExitActor(): " << e.what() << "\n";
  }

  ray::Shutdown();
  return 0;
}
