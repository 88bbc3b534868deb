// Ray's C++ quick start, unchanged: a task, an actor, Put and Get. Built against lumen it runs
// in this process; built against Ray, on a Ray cluster.
//
//   c++ -std=c++20 quickstart.cpp $(pkg-config --cflags --libs lumen-ray)
#include <ray/api.h>

#include <iostream>

// A plain function becomes a task.
int Plus(int x, int y) { return x + y; }

// A class becomes an actor; Ray creates it through a factory.
class Counter {
 public:
  explicit Counter(int init) : count_(init) {}
  static Counter* FactoryCreate(int init) { return new Counter(init); }
  int Add(int x) {
    count_ += x;
    return count_;
  }

 private:
  int count_;
};

// Every remote function is registered once.
RAY_REMOTE(Plus, Counter::FactoryCreate, &Counter::Add);

int main() {
  ray::Init();

  // Put an object in the object store and read it back.
  ray::ObjectRef<int> object = ray::Put(100);
  std::cout << "Put(100), Get: " << *ray::Get(object) << "\n";

  // A task: Plus runs on the runtime's workers; its result is an ObjectRef.
  ray::ObjectRef<int> sum = ray::Task(Plus).Remote(1, 2);
  std::cout << "Task(Plus).Remote(1, 2): " << *sum.Get() << "\n";

  // An ObjectRef argument is resolved before the task runs.
  ray::ObjectRef<int> chained = ray::Task(Plus).Remote(sum, object);
  std::cout << "Task(Plus).Remote(sum, object): " << *chained.Get() << "\n";

  // An actor: calls run one at a time, in order, on its own state.
  ray::ActorHandle<Counter> counter = ray::Actor(Counter::FactoryCreate).Remote(1);
  counter.Task(&Counter::Add).Remote(3);
  ray::ObjectRef<int> count = counter.Task(&Counter::Add).Remote(3);
  std::cout << "Counter(1), Add(3), Add(3): " << *count.Get() << "\n";

  ray::Shutdown();
  return 0;
}
