// Ray's placement groups: reserve bundles of resources, wait until they are reserved, run tasks
// and an actor in a bundle, find a group by name and by id, and remove it.
#include <ray/api.h>

#include <iostream>
#include <string>
#include <unordered_map>
#include <vector>

int Multiply(int a, int b) { return a * b; }

class Accumulator {
 public:
  static Accumulator* FactoryCreate() { return new Accumulator(); }
  int Add(int x) { return total_ += x; }

 private:
  int total_ = 0;
};

RAY_REMOTE(Multiply, Accumulator::FactoryCreate, &Accumulator::Add);

std::string StateName(ray::PlacementGroupState state) {
  switch (state) {
    case ray::PlacementGroupState::PENDING:
      return "PENDING";
    case ray::PlacementGroupState::CREATED:
      return "CREATED";
    case ray::PlacementGroupState::REMOVED:
      return "REMOVED";
    case ray::PlacementGroupState::RESCHEDULING:
      return "RESCHEDULING";
    default:
      return "UNRECOGNIZED";
  }
}

// Another part of the program finds the group by the name it was given.
int RunInNamedGroup(const std::string& name) {
  ray::PlacementGroup group = ray::GetPlacementGroup(name);
  if (group.Empty()) return -1;
  return *ray::Task(Multiply).SetPlacementGroup(group, 1).SetResource("CPU", 1).Remote(6, 7).Get();
}

int main() {
  ray::Init();

  // Two bundles of one CPU each, packed on as few nodes as possible.
  std::vector<std::unordered_map<std::string, double>> bundles{{{"CPU", 1}}, {{"CPU", 1}}};
  ray::PlacementGroupCreationOptions options{"two_cpus", bundles, ray::PlacementStrategy::PACK};
  ray::PlacementGroup group = ray::CreatePlacementGroup(options);

  // Creation is asynchronous: wait (up to 60 s) until the bundles are reserved.
  bool ready = group.Wait(60);
  std::cout << "placement group '" << group.GetName() << "' with " << group.GetBundles().size()
            << " bundles ready: " << std::boolalpha << ready << "\n";

  // Tasks placed in a bundle use that bundle's reserved CPU.
  std::vector<ray::ObjectRef<int>> products;
  for (int i = 0; i < 4; ++i)
    products.push_back(ray::Task(Multiply).SetPlacementGroup(group, i % 2).SetResource("CPU", 1).Remote(i, 10));
  std::cout << "Multiply(i, 10) for i < 4 in bundles 0 and 1:";
  for (const auto& p : ray::Get(products)) std::cout << " " << *p;
  std::cout << "\n";

  // An actor can be placed in a bundle too.
  ray::ActorHandle<Accumulator> accumulator =
      ray::Actor(Accumulator::FactoryCreate).SetPlacementGroup(group, 0).Remote();
  accumulator.Task(&Accumulator::Add).Remote(5);
  std::cout << "Accumulator in bundle 0: Add(5), Add(6) = " << *accumulator.Task(&Accumulator::Add).Remote(6).Get()
            << "\n";

  // Named groups can be looked up from anywhere in the job.
  std::cout << "task in the group found by name 'two_cpus': Multiply(6, 7) = " << RunInNamedGroup("two_cpus") << "\n";
  std::cout << "GetPlacementGroup(\"no_such_group\").Empty(): " << ray::GetPlacementGroup("no_such_group").Empty()
            << "\n";

  // A group the cluster cannot fit stays pending: Wait gives up after its timeout.
  ray::PlacementGroupCreationOptions huge_options{"too_big", {{{"CPU", 100000}}}, ray::PlacementStrategy::PACK};
  ray::PlacementGroup huge = ray::CreatePlacementGroup(huge_options);
  std::cout << "a group of 100000 CPUs ready after Wait(1): " << huge.Wait(1) << ", state "
            << StateName(ray::GetPlacementGroupById(huge.GetID()).GetState()) << "\n";
  ray::RemovePlacementGroup(huge.GetID());

  std::cout << "GetAllPlacementGroups() lists 'two_cpus': ";
  bool listed = false;
  for (auto& g : ray::GetAllPlacementGroups()) listed = listed || g.GetID() == group.GetID();
  std::cout << listed << "\n";

  // Removing a group frees its reservation; looked up by id, it says REMOVED.
  std::string id = group.GetID();
  ray::RemovePlacementGroup(id);
  std::cout << "after RemovePlacementGroup: state " << StateName(ray::GetPlacementGroupById(id).GetState()) << "\n";

  ray::Shutdown();
  return 0;
}
