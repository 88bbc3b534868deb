// Ray's own types crossing task boundaries: every argument and result is serialized with
// msgpack, so a struct says which members travel with MSGPACK_DEFINE, and an enum with
// MSGPACK_ADD_ENUM. A struct may hold ObjectRefs: they travel as refs, not as values.
#include <ray/api.h>

#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

enum class Unit { Meters, Feet };
MSGPACK_ADD_ENUM(Unit);

struct Point {
  double x = 0;
  double y = 0;
  MSGPACK_DEFINE(x, y)
};

struct Path {
  std::string name;
  Unit unit = Unit::Meters;
  std::vector<Point> points;
  MSGPACK_DEFINE(name, unit, points)
};

// A batch of work: its data stays in the object store, only the ref travels with it.
struct Batch {
  std::string label;
  ray::ObjectRef<std::vector<double>> data;
  MSGPACK_DEFINE(label, data)
};

Point Centroid(Path path) {
  Point c;
  for (const auto& p : path.points) {
    c.x += p.x / path.points.size();
    c.y += p.y / path.points.size();
  }
  return c;
}

Path ToFeet(Path path) {
  if (path.unit == Unit::Feet) return path;
  for (auto& p : path.points) {
    p.x *= 3.28084;
    p.y *= 3.28084;
  }
  path.unit = Unit::Feet;
  path.name += " (ft)";
  return path;
}

std::pair<std::string, double> Total(Batch batch) {
  std::shared_ptr<std::vector<double>> values = batch.data.Get();
  double sum = 0;
  for (double v : *values) sum += v;
  return {batch.label, sum};
}

// Collects named values, and hands out a copy of what it has.
class Registry {
 public:
  static Registry* FactoryCreate() { return new Registry(); }
  int Record(std::string key, Point p) {
    points_[key] = p;
    return static_cast<int>(points_.size());
  }
  std::map<std::string, Point> Snapshot() { return points_; }

 private:
  std::map<std::string, Point> points_;
};

RAY_REMOTE(Centroid, ToFeet, Total, Registry::FactoryCreate, &Registry::Record, &Registry::Snapshot);

int main() {
  ray::Init();

  Path square{"square", Unit::Meters, {{0, 0}, {2, 0}, {2, 2}, {0, 2}}};
  Point c = *ray::Task(Centroid).Remote(square).Get();
  std::cout << "Centroid(square) = (" << c.x << ", " << c.y << ")\n";

  // A result can be the argument of the next task without coming back to the driver.
  ray::ObjectRef<Path> in_feet = ray::Task(ToFeet).Remote(square);
  Point cf = *ray::Task(Centroid).Remote(in_feet).Get();
  Path feet = *in_feet.Get();
  std::cout << "ToFeet: '" << feet.name << "', feet: " << std::boolalpha << (feet.unit == Unit::Feet) << ", centroid ("
            << cf.x << ", " << cf.y << ")\n";

  // A struct holding a ref: the task reads the data through it.
  Batch batch{"sensor-a", ray::Put(std::vector<double>{1.5, 2.5, 3.0})};
  std::pair<std::string, double> total = *ray::Task(Total).Remote(batch).Get();
  std::cout << "Total(Batch{" << total.first << "}) = " << total.second << "\n";

  // Actors take and return user types too.
  ray::ActorHandle<Registry> registry = ray::Actor(Registry::FactoryCreate).Remote();
  registry.Task(&Registry::Record).Remote(std::string("origin"), Point{0, 0});
  registry.Task(&Registry::Record).Remote(std::string("centroid"), c);
  std::map<std::string, Point> snapshot = *registry.Task(&Registry::Snapshot).Remote().Get();
  std::cout << "Registry snapshot:";
  for (const auto& [key, p] : snapshot) std::cout << " " << key << "=(" << p.x << ", " << p.y << ")";
  std::cout << "\n";

  ray::Shutdown();
  return 0;
}
