// Ray's failure handling: a task's exception comes back from Get as RayTaskException (and so
// does the result of a task that depended on it), Get with a timeout, an actor method that
// throws without ending its actor, actors restarted after Kill(false) up to SetMaxRestarts,
// WasCurrentActorRestarted, ExitActor, and calls to an ended actor as RayActorException.
#include <ray/api.h>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>

int ParsePositive(std::string text) {
  int value = std::stoi(text);  // std::invalid_argument for "abc"
  if (value <= 0) throw std::out_of_range("not positive: " + text);
  return value;
}

int Double(int x) { return 2 * x; }

int Sleep(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

class Worker {
 public:
  explicit Worker(int start) : count_(start) {}
  static Worker* FactoryCreate(int start) { return new Worker(start); }
  int Increment() { return ++count_; }
  int Count() { return count_; }
  bool Restarted() { return ray::WasCurrentActorRestarted(); }
  int Fail() { throw std::runtime_error("method failed"); }
  void Quit() { ray::ExitActor(); }

 private:
  int count_;
};

RAY_REMOTE(ParsePositive, Double, Sleep, Worker::FactoryCreate, &Worker::Increment, &Worker::Count, &Worker::Restarted,
           &Worker::Fail, &Worker::Quit);

// Calls Count, retrying while the actor restarts: calls that reach an actor while it is down
// fail with RayActorException.
int CountWhenBack(ray::ActorHandle<Worker>& worker) {
  for (int attempt = 0;; ++attempt) {
    try {
      return *worker.Task(&Worker::Count).Remote().Get();
    } catch (const ray::internal::RayActorException&) {
      if (attempt == 20) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

int main() {
  ray::Init();

  // A task that throws: Get rethrows it as RayTaskException, whose message names the function.
  try {
    ray::Task(ParsePositive).Remote(std::string("abc")).Get();
  } catch (const ray::internal::RayTaskException& e) {
    std::cout << "ParsePositive(\"abc\") threw RayTaskException: " << e.what() << "\n";
  }

  // A task whose argument failed fails with the same error, without running.
  ray::ObjectRef<int> failed = ray::Task(ParsePositive).Remote(std::string("-5"));
  try {
    ray::Task(Double).Remote(failed).Get();
  } catch (const ray::internal::RayTaskException&) {
    std::cout << "Double(ParsePositive(\"-5\")): RayTaskException from the failed argument\n";
  }
  std::cout << "Double(ParsePositive(\"21\")) = "
            << *ray::Task(Double).Remote(ray::Task(ParsePositive).Remote(std::string("21"))).Get() << "\n";

  // Get with a timeout throws RayTimeoutException; the task goes on, and a later Get has it.
  ray::ObjectRef<int> slow = ray::Task(Sleep).Remote(300);
  try {
    slow.Get(20);
  } catch (const ray::internal::RayTimeoutException&) {
    std::cout << "Get(20 ms) of a 300 ms task: RayTimeoutException; Get() later: " << *slow.Get() << "\n";
  }

  // An exception in an actor method fails that call only; the actor keeps its state.
  ray::ActorHandle<Worker> steady = ray::Actor(Worker::FactoryCreate).Remote(0);
  steady.Task(&Worker::Increment).Remote();
  try {
    steady.Task(&Worker::Fail).Remote().Get();
  } catch (const ray::internal::RayTaskException&) {
    std::cout << "Worker.Fail(): RayTaskException; the actor still counts "
              << *steady.Task(&Worker::Increment).Remote().Get() << "\n";
  }

  // With SetMaxRestarts(1), Kill(false) restarts the actor once: the factory runs again with the
  // same arguments, so its state starts over.
  ray::ActorHandle<Worker> restartable = ray::Actor(Worker::FactoryCreate).SetMaxRestarts(1).Remote(100);
  restartable.Task(&Worker::Increment).Remote().Get();
  std::cout << "before Kill(false): count " << *restartable.Task(&Worker::Count).Remote().Get() << ", restarted "
            << std::boolalpha << *restartable.Task(&Worker::Restarted).Remote().Get() << "\n";
  restartable.Kill(false);
  std::cout << "after Kill(false): count " << CountWhenBack(restartable) << ", restarted "
            << *restartable.Task(&Worker::Restarted).Remote().Get() << "\n";

  // The restart is used up: after a second Kill(false) the actor stays dead.
  restartable.Kill(false);
  try {
    for (int i = 0; i < 50; ++i) {  // until the call reaches the dead actor
      restartable.Task(&Worker::Count).Remote().Get();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cout << "after a second Kill(false) the actor still answers\n";
  } catch (const ray::internal::RayActorException&) {
    std::cout << "after a second Kill(false) with no restarts left: RayActorException\n";
  }

  // Kill() ends an actor for good, restarts or not.
  ray::ActorHandle<Worker> killed = ray::Actor(Worker::FactoryCreate).SetMaxRestarts(3).Remote(0);
  killed.Task(&Worker::Count).Remote().Get();
  killed.Kill();
  try {
    for (int i = 0; i < 50; ++i) {
      killed.Task(&Worker::Count).Remote().Get();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cout << "after Kill() the actor still answers\n";
  } catch (const ray::internal::RayActorException&) {
    std::cout << "after Kill(): RayActorException\n";
  }

  // ExitActor() ends the actor from inside: its call and every later one fail.
  ray::ActorHandle<Worker> quitter = ray::Actor(Worker::FactoryCreate).Remote(0);
  try {
    quitter.Task(&Worker::Quit).Remote().Get();
    std::cout << "Quit() returned\n";
  } catch (const ray::internal::RayActorException&) {
    std::cout << "Quit() called ExitActor(): RayActorException\n";
  }
  try {
    quitter.Task(&Worker::Count).Remote().Get();
    std::cout << "a call after ExitActor() was answered\n";
  } catch (const ray::internal::RayActorException&) {
    std::cout << "a call after ExitActor(): RayActorException\n";
  }

  ray::Shutdown();
  return 0;
}
