// Ray's objects: Put and Get, Get of many refs and with a timeout, Wait, refs passed to tasks
// (as arguments, resolved to their values, and inside a container, where they stay refs), and
// object ids.
#include <ray/api.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

// Sums a vector. Called with an ObjectRef<std::vector<int>>, it gets the vector itself.
int Sum(std::vector<int> values) { return std::accumulate(values.begin(), values.end(), 0); }

// Refs inside a container reach the task as refs: the task reads the ones it needs.
int SumOfRefs(std::vector<ray::ObjectRef<int>> refs) {
  int total = 0;
  for (const auto& ref : refs) total += *ref.Get();
  return total;
}

// Returns `value` after sleeping `ms` milliseconds.
int Delayed(int value, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return value;
}

RAY_REMOTE(Sum, SumOfRefs, Delayed);

int main() {
  ray::Init();

  // Put copies a value into the object store; Get returns a copy of it.
  ray::ObjectRef<std::vector<int>> numbers = ray::Put(std::vector<int>{1, 2, 3, 4});
  std::shared_ptr<std::vector<int>> copy = ray::Get(numbers);
  copy->push_back(100);  // changes this copy only: objects are immutable
  std::cout << "Put([1, 2, 3, 4]), then changed what Get returned; the object still has " << ray::Get(numbers)->size()
            << " elements\n";

  // A ref as an argument: the task waits for the object and receives its value.
  std::cout << "Task(Sum).Remote(ref to [1, 2, 3, 4]) = " << *ray::Task(Sum).Remote(numbers).Get() << "\n";

  // Get many refs at once: the values come back in the order of the refs.
  std::vector<ray::ObjectRef<int>> squares;
  for (int i = 1; i <= 4; ++i) squares.push_back(ray::Put(i * i));
  std::vector<std::shared_ptr<int>> values = ray::Get(squares);
  std::cout << "Get([Put(1), Put(4), Put(9), Put(16)]) =";
  for (const auto& v : values) std::cout << " " << *v;
  std::cout << "\n";

  // Refs inside a vector stay refs: the task gets them and reads them itself.
  std::cout << "Task(SumOfRefs).Remote(vector of 4 refs) = " << *ray::Task(SumOfRefs).Remote(squares).Get() << "\n";

  // Wait returns once num_objects are ready, or when the timeout passes.
  std::vector<ray::ObjectRef<int>> pending{ray::Task(Delayed).Remote(1, 0), ray::Task(Delayed).Remote(2, 1500),
                                           ray::Task(Delayed).Remote(3, 0)};
  ray::WaitResult<int> two = ray::Wait(pending, 2, 1000);
  std::cout << "Wait(3 refs, num_objects 2, 1000 ms): " << two.ready.size() << " ready, " << two.unready.size()
            << " unready\n";
  ray::WaitResult<int> poll = ray::Wait(pending, 3, 0);
  std::cout << "Wait(3 refs, num_objects 3, 0 ms) while one sleeps: " << poll.ready.size() << " ready\n";

  // Get with a timeout throws RayTimeoutException when the object is not ready in time.
  try {
    ray::Get(pending[1], 10);
    std::cout << "Get(ref, 10 ms) returned\n";
  } catch (const ray::internal::RayTimeoutException&) {
    std::cout << "Get(ref, 10 ms) of a task that sleeps 1500 ms: RayTimeoutException\n";
  }
  std::cout << "Get(ref) without a timeout waits: " << *ray::Get(pending[1]) << "\n";

  // Every object has an id; a ref made from the id reads the same object while it lives.
  std::vector<std::string> ids;
  for (const auto& ref : squares) ids.push_back(ref.ID());
  ray::ObjectRef<int> same(ids[2]);
  std::cout << "ObjectRef<int>(id of Put(9)).Get() = " << *same.Get() << ", same ref: " << std::boolalpha
            << (same == squares[2]) << "\n";
  int by_ids = 0;
  for (const auto& v : ray::Get<int>(ids)) by_ids += *v;
  std::cout << "Get<int>(4 ids) sums to " << by_ids << "\n";

  ray::Shutdown();
  return 0;
}
