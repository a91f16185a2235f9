import Foundation
import SwiftProtobuf

/// Builds a message of any generated type with *every* numeric field, at every depth, set to one value
/// (truncated to the field's width), every enum to that raw value, every repeated field to one such element
/// and every message field to such a message: what a hostile CRI client can send, reached without a list
/// of field names that would go stale. Strings, bytes, bools and maps stay empty, so a request merged onto
/// a valid one keeps its names and ids and reaches the code that uses its numbers.
struct ExtremeNumbers: SwiftProtobuf.Decoder {
    let value: Int64
    private var depth: Int
    private var nextField = 0
    /// Above any field number the CRI uses.
    private static let lastField = 64

    static func message<M: Message>(_ type: M.Type, all value: Int64) throws -> M {
        var decoder = ExtremeNumbers(value: value, depth: 0)
        var message = M()
        try message.decodeMessage(decoder: &decoder)
        return message
    }

    private init(value: Int64, depth: Int) {
        self.value = value
        self.depth = depth
    }

    mutating func handleConflictingOneOf() throws {}

    mutating func nextFieldNumber() throws -> Int? {
        nextField += 1
        return nextField <= Self.lastField ? nextField : nil
    }

    private var i32: Int32 { Int32(truncatingIfNeeded: value) }
    private var u32: UInt32 { UInt32(truncatingIfNeeded: value) }
    private var u64: UInt64 { UInt64(bitPattern: value) }

    mutating func decodeSingularFloatField(value: inout Float) throws { value = Float(self.value) }
    mutating func decodeSingularFloatField(value: inout Float?) throws { value = Float(self.value) }
    mutating func decodeRepeatedFloatField(value: inout [Float]) throws { value = [Float(self.value)] }
    mutating func decodeSingularDoubleField(value: inout Double) throws { value = Double(self.value) }
    mutating func decodeSingularDoubleField(value: inout Double?) throws { value = Double(self.value) }
    mutating func decodeRepeatedDoubleField(value: inout [Double]) throws { value = [Double(self.value)] }
    mutating func decodeSingularInt32Field(value: inout Int32) throws { value = i32 }
    mutating func decodeSingularInt32Field(value: inout Int32?) throws { value = i32 }
    mutating func decodeRepeatedInt32Field(value: inout [Int32]) throws { value = [i32] }
    mutating func decodeSingularInt64Field(value: inout Int64) throws { value = self.value }
    mutating func decodeSingularInt64Field(value: inout Int64?) throws { value = self.value }
    mutating func decodeRepeatedInt64Field(value: inout [Int64]) throws { value = [self.value] }
    mutating func decodeSingularUInt32Field(value: inout UInt32) throws { value = u32 }
    mutating func decodeSingularUInt32Field(value: inout UInt32?) throws { value = u32 }
    mutating func decodeRepeatedUInt32Field(value: inout [UInt32]) throws { value = [u32] }
    mutating func decodeSingularUInt64Field(value: inout UInt64) throws { value = u64 }
    mutating func decodeSingularUInt64Field(value: inout UInt64?) throws { value = u64 }
    mutating func decodeRepeatedUInt64Field(value: inout [UInt64]) throws { value = [u64] }
    mutating func decodeSingularSInt32Field(value: inout Int32) throws { value = i32 }
    mutating func decodeSingularSInt32Field(value: inout Int32?) throws { value = i32 }
    mutating func decodeRepeatedSInt32Field(value: inout [Int32]) throws { value = [i32] }
    mutating func decodeSingularSInt64Field(value: inout Int64) throws { value = self.value }
    mutating func decodeSingularSInt64Field(value: inout Int64?) throws { value = self.value }
    mutating func decodeRepeatedSInt64Field(value: inout [Int64]) throws { value = [self.value] }
    mutating func decodeSingularFixed32Field(value: inout UInt32) throws { value = u32 }
    mutating func decodeSingularFixed32Field(value: inout UInt32?) throws { value = u32 }
    mutating func decodeRepeatedFixed32Field(value: inout [UInt32]) throws { value = [u32] }
    mutating func decodeSingularFixed64Field(value: inout UInt64) throws { value = u64 }
    mutating func decodeSingularFixed64Field(value: inout UInt64?) throws { value = u64 }
    mutating func decodeRepeatedFixed64Field(value: inout [UInt64]) throws { value = [u64] }
    mutating func decodeSingularSFixed32Field(value: inout Int32) throws { value = i32 }
    mutating func decodeSingularSFixed32Field(value: inout Int32?) throws { value = i32 }
    mutating func decodeRepeatedSFixed32Field(value: inout [Int32]) throws { value = [i32] }
    mutating func decodeSingularSFixed64Field(value: inout Int64) throws { value = self.value }
    mutating func decodeSingularSFixed64Field(value: inout Int64?) throws { value = self.value }
    mutating func decodeRepeatedSFixed64Field(value: inout [Int64]) throws { value = [self.value] }
    mutating func decodeSingularBoolField(value: inout Bool) throws {}
    mutating func decodeSingularBoolField(value: inout Bool?) throws {}
    mutating func decodeRepeatedBoolField(value: inout [Bool]) throws {}
    mutating func decodeSingularStringField(value: inout String) throws {}
    mutating func decodeSingularStringField(value: inout String?) throws {}
    mutating func decodeRepeatedStringField(value: inout [String]) throws {}
    mutating func decodeSingularBytesField(value: inout Data) throws {}
    mutating func decodeSingularBytesField(value: inout Data?) throws {}
    mutating func decodeRepeatedBytesField(value: inout [Data]) throws {}

    mutating func decodeSingularEnumField<E: Enum>(value: inout E) throws where E.RawValue == Int {
        value = E(rawValue: Int(i32)) ?? value
    }

    mutating func decodeSingularEnumField<E: Enum>(value: inout E?) throws where E.RawValue == Int {
        value = E(rawValue: Int(i32))
    }

    mutating func decodeRepeatedEnumField<E: Enum>(value: inout [E]) throws where E.RawValue == Int {
        value = E(rawValue: Int(i32)).map { [$0] } ?? []
    }

    mutating func decodeSingularMessageField<M: Message>(value: inout M?) throws {
        value = try nested(M.self)
    }

    mutating func decodeRepeatedMessageField<M: Message>(value: inout [M]) throws {
        value = try nested(M.self).map { [$0] } ?? []
    }

    mutating func decodeSingularGroupField<G: Message>(value: inout G?) throws {}
    mutating func decodeRepeatedGroupField<G: Message>(value: inout [G]) throws {}

    mutating func decodeMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: inout _ProtobufMap<KeyType, ValueType>.BaseType
    ) throws {}

    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: inout _ProtobufEnumMap<KeyType, ValueType>.BaseType
    ) throws {}

    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: inout _ProtobufMessageMap<KeyType, ValueType>.BaseType
    ) throws {}

    mutating func decodeExtensionField(values: inout ExtensionFieldValueSet, messageType: any Message.Type, fieldNumber: Int) throws {}

    /// A message field filled the same way, a few levels deep (the CRI's deepest numbers sit at four).
    private func nested<M: Message>(_ type: M.Type) throws -> M? {
        guard depth < 6 else { return nil }
        var decoder = ExtremeNumbers(value: value, depth: depth + 1)
        var message = M()
        try message.decodeMessage(decoder: &decoder)
        return message
    }
}
