// Ray's task examples: ObjectRef arguments, Wait, timeouts, resources, placement groups and
// the exceptions a failed task gives.
#include <ray/api.h>

#include <chrono>
#include <iostream>
#include <stdexcept>
#include <thread>

int Square(int x) { return x * x; }
// Refs inside a container reach the task as refs; it reads the values it needs.
int SumAll(std::vector<ray::ObjectRef<int>> refs) {
  int sum = 0;
  for (const auto& r : refs) sum += *r.Get();
  return sum;
}
int SlowIdentity(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int Divide(int a, int b) {
  if (b == 0) throw std::domain_error("division by zero");
  return a / b;
}

RAY_REMOTE(Square, SumAll, SlowIdentity, Divide);

int main() {
  ray::Init();

  // A ref as an argument is resolved: the task gets the value. Refs inside a vector stay refs.
  auto four = ray::Task(Square).Remote(2);
  auto sixteen = ray::Task(Square).Remote(four);
  std::cout << "Square(Square(2)) = " << *ray::Get(sixteen) << "\n";
  std::vector<ray::ObjectRef<int>> parts{four, sixteen, ray::Put(1)};
  std::cout << "SumAll([4, 16, 1]) = " << *ray::Get(ray::Task(SumAll).Remote(parts)) << "\n";

  // Wait for the first of three to finish.
  std::vector<ray::ObjectRef<int>> slow{ray::Task(SlowIdentity).Remote(300), ray::Task(SlowIdentity).Remote(10),
                                        ray::Task(SlowIdentity).Remote(200)};
  ray::WaitResult<int> first = ray::Wait(slow, 1, 5000);
  std::cout << "Wait(1 of 3): ready " << first.ready.size() << " (it slept " << *first.ready.front().Get()
            << " ms), unready " << first.unready.size() << "\n";

  // Get with a timeout.
  try {
    ray::Get(slow[0], 1);
  } catch (const ray::internal::RayTimeoutException&) {
    std::cout << "Get(ref, 1 ms) of a 300 ms task: RayTimeoutException\n";
  }

  // A task that asks for two CPUs runs once it holds them.
  auto heavy = ray::Task(Square).SetResources({{"CPU", 2}}).Remote(3);
  std::cout << "Square(3) with 2 CPUs = " << *heavy.Get() << "\n";

  // A placement group reserves a bundle of one CPU; tasks placed in it draw from it.
  ray::PlacementGroupCreationOptions options{"one_cpu", {{{"CPU", 1}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);
  std::cout << "placement group created: " << std::boolalpha << group.Wait(60) << "\n";
  auto placed = ray::Task(Square).SetPlacementGroup(group, 0).Remote(5);
  std::cout << "Square(5) in bundle 0 = " << *placed.Get() << "\n";
  ray::RemovePlacementGroup(group.GetID());

  // A task's exception comes back from Get as RayTaskException.
  try {
    ray::Task(Divide).Remote(1, 0).Get();
  } catch (const ray::internal::RayTaskException& e) {
    std::cout << "Divide(1, 0): " << e.what() << "\n";
  }

  ray::Shutdown();
  return 0;
}
