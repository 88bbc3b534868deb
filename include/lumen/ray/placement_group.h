/// @file
/// Placement groups: reserving bundles of resources for tasks placed in them.
///
/// @code
///   ray::PlacementGroupCreationOptions options{"workers", {{{"CPU", 1}}, {{"CPU", 1}}}, ray::PlacementStrategy::PACK};
///   ray::PlacementGroup pg = ray::CreatePlacementGroup(options);
///   pg.Wait(60);                                                    // true once reserved
///   ray::Task(Work).SetPlacementGroup(pg, 0).Remote();             // runs on bundle 0's share
///   ray::RemovePlacementGroup(pg.GetID());
/// @endcode
///
/// In one process every bundle is on this node, and a bundle is a reservation of the
/// runtime's resources (RayConfig in config.h says what the runtime has): while a group is
/// created, what its bundles hold is taken from the runtime's free resources, and only tasks
/// placed in the group draw from it. A task placed in bundle i claims its resources from that
/// bundle (bundle index -1: from the group as a whole), by default {"CPU": 1}, as Ray's tasks
/// do. At most a bundle's resources are held by its running tasks at once; the others wait.
///
/// A group whose bundles do not fit in the free resources stays PENDING and is created once
/// removed groups free enough (as on a one-node Ray cluster; STRICT_SPREAD with more than one
/// bundle never fits on one node). Wait returns false while it is pending.
///
/// What differs from Ray, and why: placing a task in a group that is not created yet throws
/// RayException (Ray queues it until the group exists): call Wait first, as Ray's examples do.
/// Removing a group returns its reservation at once, but tasks already queued in it still run
/// (Ray kills them: one process cannot kill a running task); new tasks placed in it throw.
/// Actors accept a group and a bundle index but do not hold its resources.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace ray {

/// How a group's bundles are spread over nodes; on one node every strategy fits, except
/// STRICT_SPREAD with more than one bundle.
enum class PlacementStrategy {
  PACK = 0,
  SPREAD = 1,
  STRICT_PACK = 2,
  STRICT_SPREAD = 3,
  UNRECOGNIZED = -1,
};

/// Where a group is in its life: PENDING until its bundles fit, CREATED while it holds them,
/// REMOVED after RemovePlacementGroup.
enum PlacementGroupState {
  PENDING = 0,
  CREATED = 1,
  REMOVED = 2,
  RESCHEDULING = 3,
  UNRECOGNIZED = -1,
};

/// What CreatePlacementGroup reserves.
struct PlacementGroupCreationOptions {
  std::string name;  ///< looked up by GetPlacementGroup(name)
  std::vector<std::unordered_map<std::string, double>> bundles;  ///< each bundle's resources: {"CPU": 1}, {"GPU": 1, "memory": 1e9}
  PlacementStrategy strategy;  ///< how bundles go on nodes (all on this one here)
};

namespace internal {
struct PlacementGroupRecord;
}

/// A handle to a placement group: cheap to copy; an empty one (default-constructed, or a lookup
/// that found nothing) answers with empty values.
class PlacementGroup {
 public:
  PlacementGroup() = default;
  /// Wraps the group's record (kept by lib/ray).
  explicit PlacementGroup(std::shared_ptr<internal::PlacementGroupRecord> record) : record_(std::move(record)) {}

  /// The group's id, what RemovePlacementGroup and GetPlacementGroupById take; empty for an empty
  /// handle.
  std::string GetID() const;
  /// The name given at creation.
  std::string GetName();
  /// The bundles given at creation.
  std::vector<std::unordered_map<std::string, double>> GetBundles();
  /// The group's state now (PENDING, CREATED or REMOVED).
  ray::PlacementGroupState GetState();
  /// The strategy given at creation; UNRECOGNIZED for an empty handle.
  PlacementStrategy GetStrategy();
  /// Waits up to timeout_seconds for the group to be created; true if it is.
  bool Wait(int timeout_seconds);
  /// True for a handle that names no group.
  bool Empty() const { return record_ == nullptr; }

  /// For lumen's own code: the group's record.
  const std::shared_ptr<internal::PlacementGroupRecord>& record() const noexcept { return record_; }

 private:
  std::shared_ptr<internal::PlacementGroupRecord> record_;
};

/// Throws RayException for a group without bundles, an empty bundle, or a bad resource value.
PlacementGroup CreatePlacementGroup(const ray::PlacementGroupCreationOptions& create_options);
/// Removes the group and returns its reservation to the runtime (tasks already queued in it still
/// run). A no-op for a group already removed; throws RayException for an unknown id.
void RemovePlacementGroup(const std::string& placement_group_id);
/// Every group created since Init, removed ones included.
std::vector<PlacementGroup> GetAllPlacementGroups();
/// An empty group (Empty() is true) when there is none with this id or name.
PlacementGroup GetPlacementGroupById(const std::string& id);
/// The group with this name that is not removed; an empty group (Empty() is true) when there is
/// none.
PlacementGroup GetPlacementGroup(const std::string& name);

}  // namespace ray
