//! Attributes of the CPU device (`DevGetAttr`), read from the operating system.

use std::fs;

use super::SessionError;
use super::device::machine_memory;
use super::local::check_device;
use crate::endpoint::tvm::codec::{Device, DeviceAttrKind as Kind, Value};

/// The attribute `attr` of `device`; `None` for attributes a CPU does not have (as TVM).
pub fn get(device: Device, attr: Kind) -> Result<Value, SessionError> {
    if attr == Kind::EXIST {
        return Ok(Value::Int(i64::from(check_device(device).is_ok())));
    }
    check_device(device)?;
    let value = match attr {
        Kind::DEVICE_NAME => cpu_model_name().map(Value::Str),
        Kind::MAX_CLOCK_RATE => max_clock_khz().map(Value::Int),
        Kind::MULTI_PROCESSOR_COUNT => {
            std::thread::available_parallelism().ok().map(|n| Value::Int(n.get() as i64))
        }
        Kind::TOTAL_GLOBAL_MEMORY => machine_memory::total().map(signed).map(Value::Int),
        Kind::AVAILABLE_GLOBAL_MEMORY => machine_memory::available().map(signed).map(Value::Int),
        _ => None,
    };
    Ok(value.unwrap_or(Value::None))
}

fn cpuinfo_field(field: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == field)
        .map(|(_, value)| value.trim().to_owned())
}

fn cpu_model_name() -> Option<String> {
    cpuinfo_field("model name").or_else(|| Some(std::env::consts::ARCH.to_owned()))
}

/// Clock rate in kHz, the unit TVM uses for this attribute.
fn max_clock_khz() -> Option<i64> {
    let from_sysfs = fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok());
    from_sysfs.or_else(|| {
        let mhz: f64 = cpuinfo_field("cpu MHz")?.parse().ok()?;
        Some((mhz * 1000.0) as i64)
    })
}

fn signed(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_exists_and_cuda_does_not() {
        assert_eq!(get(Device::cpu(0), Kind::EXIST), Ok(Value::Int(1)));
        let cuda = Device { device_type: 2, device_id: 0 };
        assert_eq!(get(cuda, Kind::EXIST), Ok(Value::Int(0)));
    }

    #[test]
    fn other_attributes_of_a_missing_device_are_errors() {
        let cuda = Device { device_type: 2, device_id: 0 };
        assert_eq!(get(cuda, Kind::DEVICE_NAME), Err(SessionError::UnsupportedDevice(cuda)));
    }

    #[test]
    fn memory_and_processor_count_are_positive() {
        for attr in
            [Kind::TOTAL_GLOBAL_MEMORY, Kind::AVAILABLE_GLOBAL_MEMORY, Kind::MULTI_PROCESSOR_COUNT]
        {
            match get(Device::cpu(0), attr).unwrap() {
                Value::Int(v) => assert!(v > 0, "kind {attr:?}"),
                other => panic!("kind {attr:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_attributes_are_none() {
        assert_eq!(get(Device::cpu(0), Kind::MAX_THREADS_PER_BLOCK), Ok(Value::None));
        assert_eq!(get(Device::cpu(0), Kind(9999)), Ok(Value::None));
    }
}
