"""The host driver: :class:`Accelerator` over a transport (serial port, in-process device model,
simulated hardware). See :mod:`sqzhw.protocol` for what crosses the link."""

from .accelerator import (Accelerator, ConfigMismatchError, DeviceBusyError, DeviceInfo, DeviceTimeout,
                          DriverError, EngineError, EngineStatus, InferResult, LinkError, LoadChunk,
                          LoadResult, MemoryFault, Transport)
from .transports import DeviceModel, FaultInjector, LoopbackTransport, SerialTransport

__all__ = ["Accelerator", "Transport", "DeviceInfo", "EngineStatus", "InferResult", "DriverError",
           "LinkError", "DeviceTimeout", "DeviceBusyError", "EngineError", "ConfigMismatchError",
           "MemoryFault", "LoadResult", "LoadChunk", "SerialTransport", "LoopbackTransport", "DeviceModel",
           "FaultInjector"]
